"""Logging an expected outage (the broker down, the database restarting) as one
concise line per kind of failure, not a traceback per call.

With the broker down, every create used to log a 6.5 kB chained traceback; with the
database down, every metrics scrape logged fifty lines. An outage is news once, and
then again only as a count: the first failure of a kind logs one WARNING line
(exception type and first line of its message); repeats within ``every_seconds`` are
counted, and summarised in one line once that interval has passed; the first success
afterwards logs that the kind recovered. Tracebacks go to DEBUG only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_MESSAGE_CHARS = 300


@dataclass
class _Failing:
    since: float
    reported_at: float
    unreported: int = 0
    total: int = 1


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, bounded."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    summary = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return summary[:MAX_MESSAGE_CHARS]


class OutageLog:
    """Rate-limited failure lines for one logger, per kind (thread-safe)."""

    def __init__(
        self,
        logger: logging.Logger,
        every_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._every = every_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._failing: dict[str, _Failing] = {}

    def failed(self, kind: str, exc: BaseException, context: str = "") -> None:
        """Record one failure of ``kind``; logs only when it is news."""
        now = self._clock()
        suffix = f" ({context})" if context else ""
        with self._lock:
            state = self._failing.get(kind)
            if state is None:
                self._failing[kind] = _Failing(since=now, reported_at=now)
                line = f"{kind}: {one_line(exc)}{suffix}; repeats are counted"
            else:
                state.unreported += 1
                state.total += 1
                if now - state.reported_at < self._every:
                    line = ""
                else:
                    line = (
                        f"{kind}: still failing, {state.unreported} more time(s) in the last "
                        f"{now - state.reported_at:.0f}s: {one_line(exc)}{suffix}"
                    )
                    state.reported_at, state.unreported = now, 0
        if line:
            self._logger.warning(line)
        self._logger.debug("%s: traceback", kind, exc_info=exc)

    def succeeded(self, kind: str) -> None:
        """The kind works again: says so once if it was failing."""
        if kind not in self._failing:  # the common case, without the lock
            return
        with self._lock:
            state = self._failing.pop(kind, None)
        if state is not None:
            self._logger.info(
                "%s: recovered after %d failure(s) over %.0fs",
                kind,
                state.total,
                self._clock() - state.since,
            )

    def failing(self, kind: str) -> bool:
        return kind in self._failing
