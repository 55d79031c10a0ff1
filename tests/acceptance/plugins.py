"""Handlers the acceptance tests plug into real workers via ASSESSMENT_STORE_HANDLERS.

The request's ``serverName`` carries the test's instructions (e.g. ``sleep:0.5``).
"""

from __future__ import annotations

import time
from typing import Any

from assessment_store.handlers.context import HandlerContext


def noop(ctx: HandlerContext) -> dict[str, Any]:
    return {"ok": True}


def sleepy(ctx: HandlerContext) -> dict[str, Any]:
    """Sleep ``sleep:SECONDS`` in ten steps, reporting progress after each."""
    seconds = float((ctx.request.server_name or "sleep:0").partition(":")[2] or 0)
    for step in range(1, 11):
        time.sleep(seconds / 10)
        ctx.report_progress(step * 10 - 1 if step == 10 else step * 10)
    return {"slept": seconds, "attempt": ctx.attempt}


def flaky(ctx: HandlerContext) -> dict[str, Any]:
    """Fail the first attempt, succeed on the next."""
    if ctx.attempt == 1:
        raise RuntimeError("first attempt always fails")
    return {"attempt": ctx.attempt}


def always_fails(ctx: HandlerContext) -> dict[str, Any]:
    """Fail every attempt (retries run out: a dead letter)."""
    raise RuntimeError(f"attempt {ctx.attempt} failed")
