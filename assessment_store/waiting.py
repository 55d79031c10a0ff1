"""Waiting for an assessment to finish: the one wait loop's decisions.

Both drivers, the blocking ``AssessmentStore.wait_for_completion`` and the API's
asyncio long-poll (``http/waiting.py``), read the row, ask :meth:`WaitLoop.pause`
what to do, and sleep until woken by the row's change notification or until the
pause is over. The deadline, the re-check interval (a lost notification only
delays) and the timeout error are decided here once.
"""

from __future__ import annotations

import time
from typing import Final

from assessment_store.errors import AssessmentTimeoutError, InvalidInputError
from assessment_store.inputs import check_positive, over_seconds_limit
from assessment_store.models import Assessment

# A waiter re-reads the row this often even without a notification.
WAIT_RECHECK_SECONDS: Final = 5.0
# The longest one wait of the API or the CLI may last: a long-poll holds a connection
# meanwhile. Longer is a loop of waits; the Python API's own callers are not limited.
MAX_WAIT_SECONDS: Final = 300.0


def check_wait_timeout(field: str, value: object) -> float:
    """A wait's timeout from an API or CLI caller: above zero, finite, at most
    MAX_WAIT_SECONDS."""
    seconds = check_positive(field, value)
    if seconds > MAX_WAIT_SECONDS:
        raise InvalidInputError(field, over_seconds_limit(seconds, MAX_WAIT_SECONDS), value)
    return seconds


class WaitLoop:
    """The state of one wait: ``pause(current)`` says how long to sleep before the next
    read, None when ``current`` is finished, or raises AssessmentTimeoutError."""

    def __init__(
        self, assessment_id: str, timeout: float, recheck_seconds: float = WAIT_RECHECK_SECONDS
    ) -> None:
        self.assessment_id = assessment_id
        self.timeout = check_positive("timeout", timeout)
        self.deadline = time.monotonic() + self.timeout
        self.recheck_seconds = recheck_seconds

    def pause(self, current: Assessment) -> float | None:
        if current.is_finished:
            return None
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise AssessmentTimeoutError(self.assessment_id, self.timeout, current.state.value)
        return min(remaining, self.recheck_seconds)
