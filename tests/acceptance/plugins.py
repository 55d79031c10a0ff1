"""Handlers the acceptance tests plug into real workers via ASSESSMENT_STORE_HANDLERS.

The request's ``serverName`` carries the test's instructions (e.g. ``sleep:0.5``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
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


HOLD_ENV = "ASSESSMENT_TEST_HOLD"
# Upper bound on how long a test handler keeps going on its own (the test ends it first).
SAFETY_SECONDS = 120.0


def held(ctx: HandlerContext) -> dict[str, Any]:
    """Report 50% "held", then, on a worker started with ASSESSMENT_TEST_HOLD=1, never
    finish: such a worker is provably still running the attempt when a test kills it.
    Elsewhere, finish at once."""
    ctx.report_progress(50, "held")
    if os.environ.get(HOLD_ENV) == "1":
        deadline = time.monotonic() + SAFETY_SECONDS
        while time.monotonic() < deadline:
            time.sleep(0.05)
        raise RuntimeError("held for too long: the test should have killed this worker")
    return {"held": False, "attempt": ctx.attempt}


def sleeper(ctx: HandlerContext) -> dict[str, Any]:
    """Sleep (no progress reports) until the time limit stops it."""
    deadline = time.monotonic() + SAFETY_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return {"slept": True}


def chatty(ctx: HandlerContext) -> dict[str, Any]:
    """Report progress back to back until the time limit stops it: the limit lands in
    the middle of a progress write more often than not."""
    deadline = time.monotonic() + SAFETY_SECONDS
    step = 0
    while time.monotonic() < deadline:
        step += 1
        ctx.report_progress(step % 100, f"step {step}")
    return {"steps": step}


def stubborn(ctx: HandlerContext) -> dict[str, Any]:
    """Swallow the soft time limit (as a careless ``except BaseException`` would) and keep
    going: only the hard limit, which kills the child, ends it."""
    deadline = time.monotonic() + SAFETY_SECONDS
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except BaseException:
            continue
    return {"survived": True}


def gated(ctx: HandlerContext) -> dict[str, Any]:
    """Report "at the gate", wait until the file named by ``gate:PATH`` exists, then
    return at once: the test decides the moment the attempt completes."""
    gate = Path((ctx.request.server_name or "gate:").partition(":")[2])
    ctx.report_progress(50, "at the gate")
    deadline = time.monotonic() + SAFETY_SECONDS
    while not gate.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return {"gated": True}
