"""Keeping the worker's main process flat in memory under time limits.

Every task with a time limit (every assessment has one) puts a timer in the main
process's event loop; when the task ends early, Celery cancels the timer but kombu
leaves it in the heap until the moment it would have fired (celery/celery#5200). At
200 assessments/s and the default 300 s limit that is 60,000 dead timers, tens of
MB that grow with throughput. Dropping the cancelled ones every few seconds keeps
the heap as large as the attempts actually running.
"""

from __future__ import annotations

import heapq
from typing import Any

COMPACT_EVERY_SECONDS = 5.0


def compact(timer: Any) -> int:
    """Remove cancelled entries from a kombu Timer's heap; how many were removed.

    Runs on the event loop (a hub callback), so nothing else touches the heap
    meanwhile."""
    queue = timer._queue
    live = [event for event in queue if not event[2].canceled]
    removed = len(queue) - len(live)
    if removed:
        queue[:] = live  # in place: the timer's iterator holds this very list
        heapq.heapify(queue)
    return removed


def install(hub: Any) -> None:
    """Compact ``hub``'s timer every COMPACT_EVERY_SECONDS."""
    hub.call_repeatedly(COMPACT_EVERY_SECONDS, compact, hub.timer)
