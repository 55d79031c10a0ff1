"""Long-polling without a thread or a connection per waiter.

A waiter registers with the process's notifier and sleeps on an asyncio event; the
listener thread sets it (thread-safely) when the assessment changes. Reading the row
happens in the threadpool, briefly, so a thousand waiters hold no connections while
they wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from starlette.concurrency import run_in_threadpool

from assessment_store.errors import AssessmentTimeoutError
from assessment_store.models import Assessment
from assessment_store.service import WAIT_RECHECK_SECONDS, AssessmentStore


async def wait_for_completion(
    store: AssessmentStore, assessment_id: str, timeout: float, owner: str | None
) -> Assessment:
    """Like ``AssessmentStore.wait_for_completion``, for the event loop."""
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def wake(_id: str, _state: str) -> None:
        loop.call_soon_threadsafe(woken.set)

    watch = store.notifier.watch(assessment_id, wake)
    deadline = time.monotonic() + timeout
    try:
        while True:
            current = await run_in_threadpool(store.get_fresh_state, assessment_id, owner=owner)
            if current.is_finished:
                return current
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssessmentTimeoutError(assessment_id, timeout, current.state.value)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), min(remaining, WAIT_RECHECK_SECONDS))
            woken.clear()
    finally:
        watch.cancel()
