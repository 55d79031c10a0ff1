"""Cancelled time-limit timers are dropped from the worker's event-loop heap."""

from __future__ import annotations

from kombu.asynchronous.timer import Timer

from workers.timers import compact


def test_compact_drops_cancelled_timers_and_keeps_the_live_ones_in_order() -> None:
    timer = Timer()  # type: ignore[no-untyped-call]
    fired: list[int] = []
    entries = [
        timer.call_at(1000.0 + n, fired.append, (n,))  # type: ignore[no-untyped-call]
        for n in range(10)
    ]
    for entry in entries[::2]:
        entry.cancel()  # what Celery does when a task ends before its limit
    assert len(timer) == 10, "kombu keeps cancelled entries until they are due"
    assert compact(timer) == 5
    assert len(timer) == 5
    assert compact(timer) == 0, "nothing left to drop"
    # The heap is still a heap: the live timers come out in time order.
    assert [event.entry.args[0] for event in timer.queue] == [1, 3, 5, 7, 9]
