"""Waiting for a condition, the only way fault code waits: poll it, and fail with a
message built when a bound passes (never a guessed sleep).

tests/waiting.py is the tests' twin of this; ops code may not import tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_SECONDS = 0.05


class ConditionTimeoutError(AssertionError):
    """A condition did not hold within its bound (an AssertionError, so a test that
    meets it fails with the message rather than erroring)."""


def until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    message: str | Callable[[], str],
    poll: float = POLL_SECONDS,
) -> float:
    """Return the seconds it took for ``condition()`` to hold; ConditionTimeoutError with
    ``message`` after ``timeout`` seconds (a callable message is built only then)."""
    started = time.monotonic()
    deadline = started + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise ConditionTimeoutError(message() if callable(message) else message)
        time.sleep(poll)
    return time.monotonic() - started
