"""Long-polling without a thread or a connection per waiter.

A waiter registers with the process's notifier and sleeps on an asyncio event; the
listener thread sets it (thread-safely) when the assessment changes. Reading the row
happens in the threadpool, briefly, so a thousand waiters hold no connections while
they wait. The loop's decisions are the store's (``assessment_store.waiting``).
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.concurrency import run_in_threadpool

from assessment_store.models import Assessment
from assessment_store.service import AssessmentStore
from assessment_store.waiting import WaitLoop


async def wait_for_completion(
    store: AssessmentStore, assessment_id: str, timeout: float, owner: str | None
) -> Assessment:
    """Like ``AssessmentStore.wait_for_completion``, for the event loop."""
    loop = asyncio.get_running_loop()
    woken = asyncio.Event()

    def wake(_id: str, _state: str) -> None:
        loop.call_soon_threadsafe(woken.set)

    plan = WaitLoop(assessment_id, timeout, store.wait_recheck_seconds)
    watch = store.notifier.watch(assessment_id, wake)
    try:
        while True:
            current = await run_in_threadpool(store.get_fresh_state, assessment_id, owner=owner)
            pause = plan.pause(current)
            if pause is None:
                return current
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), pause)
            woken.clear()
    finally:
        watch.cancel()
