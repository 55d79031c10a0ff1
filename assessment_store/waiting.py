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

from assessment_store.errors import AssessmentTimeoutError
from assessment_store.inputs import check_positive
from assessment_store.models import Assessment

# A waiter re-reads the row this often even without a notification.
WAIT_RECHECK_SECONDS: Final = 5.0


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
