"""Handlers and a raw task that benchmark workers load (``--include ops.bench.plugins``)."""

from __future__ import annotations

from typing import Any

import redis

from assessment_store.config import get_settings
from assessment_store.handlers.context import HandlerContext
from workers.celery_app import app

COUNTER_KEY = "bench:raw-noop-done"
_client: redis.Redis | None = None


def noop(ctx: HandlerContext) -> dict[str, Any]:
    """The assessment handler that does nothing: what is left is the store's overhead."""
    return {}


@app.task(name="bench.raw_noop", ignore_result=True)  # type: ignore[untyped-decorator]
def raw_noop() -> None:
    """The baseline: a bare Celery task that only counts itself (one Redis INCR)."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(get_settings().redis_url)
    _client.incr(COUNTER_KEY)


def sleepy(ctx: HandlerContext) -> dict[str, Any]:
    """Sleep ``sleep:SECONDS`` (from serverName) in ten steps, reporting progress."""
    import time

    seconds = float((ctx.request.server_name or "sleep:0").partition(":")[2] or 0)
    for step in range(1, 10):
        time.sleep(seconds / 10)
        ctx.report_progress(step * 10)
    time.sleep(seconds / 10)
    return {"slept": seconds}
