"""Waiting for a condition, the one way tests wait: poll, and fail with the test's own
message when a bound passes (never a guessed sleep, never pytest's timeout dump)."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_SECONDS = 0.05


def wait_until(
    condition: Callable[[], bool], *, timeout: float, message: str | Callable[[], str]
) -> None:
    """Return once ``condition()`` holds; AssertionError with ``message`` after
    ``timeout`` seconds (a callable message is built only then, e.g. from a log)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message() if callable(message) else message)
        time.sleep(POLL_SECONDS)
