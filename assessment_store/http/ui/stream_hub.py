"""One subscription to the LiveFeed for all of an API process's open streams.

The feed calls the hub once per batch, from its thread; the hub hands the batch to
its event loop once, and there every stream's queue gets it. A stream that has fallen
behind takes all its queued batches at once, merged (``take``): under a burst, a slow
page gets one bigger message rather than a growing backlog.
"""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool

from assessment_store.live import ChangeBatch, FeedSubscription, LiveFeed

# A stream this many batches behind (it is not reading) is told to reload instead.
QUEUE_BATCHES = 1000
Queue = asyncio.Queue[ChangeBatch | None]


class StreamHub:
    def __init__(self, feed: LiveFeed) -> None:
        self._feed = feed
        self._queues: set[Queue] = set()
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscription: FeedSubscription | None = None

    @property
    def stream_count(self) -> int:
        return len(self._queues)

    async def open(self) -> Queue:
        """A queue of every batch from now on (the feed is subscribed when it returns)."""
        queue: Queue = asyncio.Queue()
        async with self._lock:
            if self._subscription is None:
                self._loop = asyncio.get_running_loop()
                self._subscription = await run_in_threadpool(self._feed.subscribe, self._sink)
            self._queues.add(queue)  # only once subscribed: a failure leaves nothing behind
        return queue

    async def close(self, queue: Queue) -> None:
        async with self._lock:
            self._queues.discard(queue)
            if not self._queues and self._subscription is not None:
                # Nobody watches: the feed stops reading until the next page opens.
                self._subscription.cancel()
                self._subscription = None

    def _sink(self, batch: ChangeBatch) -> None:  # on the feed's thread
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._fan_out, batch)

    def _fan_out(self, batch: ChangeBatch) -> None:
        for queue in list(self._queues):
            if queue.qsize() < QUEUE_BATCHES:
                queue.put_nowait(batch)
            elif queue.qsize() == QUEUE_BATCHES:
                queue.put_nowait(None)  # the reader will be told to reload


async def take(queue: Queue, timeout: float) -> ChangeBatch | None:
    """The next batch merged with every other already waiting; None: too far behind.
    TimeoutError after ``timeout`` seconds with nothing."""
    first = await asyncio.wait_for(queue.get(), timeout)
    waiting = [first]
    while not queue.empty():
        waiting.append(queue.get_nowait())
    if any(batch is None for batch in waiting):
        return None
    return ChangeBatch.merged([b for b in waiting if b is not None])
