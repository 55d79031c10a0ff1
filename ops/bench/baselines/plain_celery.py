"""Plain Celery with its default worker settings: a no-op task that counts itself.

``celery -A ops.bench.baselines.plain_celery worker``; nothing here changes a Celery
default except the broker (prefetch 4, early acks, no events, WARNING logs).
"""

from __future__ import annotations

import os
import time

import redis
from celery import Celery

from ops.bench.baselines.counting import count_done

app = Celery("plain", broker=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/10"))
_client: redis.Redis | None = None


@app.task(name="plain.noop")  # type: ignore[untyped-decorator]
def noop(run: str) -> None:
    """Does nothing but count itself: one pipelined Redis round trip."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(app.conf.broker_url)
    count_done(_client, run, time.time())
