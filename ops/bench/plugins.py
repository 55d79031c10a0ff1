"""Handlers and a raw task that benchmark workers load (``--include ops.bench.plugins``)."""

from __future__ import annotations

import time
from typing import Any

import redis

from assessment_store.config import get_settings
from assessment_store.handlers.context import HandlerContext
from ops.bench.baselines.counting import count_done
from workers.celery_app import app

_client: redis.Redis | None = None


def noop(ctx: HandlerContext) -> dict[str, Any]:
    """The assessment handler that does nothing: what is left is the store's overhead."""
    return {}


@app.task(name="bench.raw_noop", ignore_result=True)  # type: ignore[untyped-decorator]
def raw_noop(run: str) -> None:
    """A baseline: a bare Celery task on the store's worker that only counts itself."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(get_settings().redis_url)
    count_done(_client, run, time.time())


def sleepy(ctx: HandlerContext) -> dict[str, Any]:
    """Sleep ``sleep:SECONDS`` (from serverName) in ten steps, reporting progress."""
    seconds = float((ctx.request.server_name or "sleep:0").partition(":")[2] or 0)
    for step in range(1, 10):
        time.sleep(seconds / 10)
        ctx.report_progress(step * 10)
    time.sleep(seconds / 10)
    return {"slept": seconds}
