"""What a handler gets: the ``handler(ctx) -> dict`` plug-in interface.

A small protocol that depends on nothing above it, so handlers (built-in or plugged
in with ``ASSESSMENT_STORE_HANDLERS``) import only this module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from assessment_store.config import Settings
from assessment_store.models import AssessmentRequest


class HandlerContext(Protocol):
    """One running attempt, as its handler sees it."""

    @property
    def assessment_id(self) -> str: ...

    @property
    def request(self) -> AssessmentRequest:
        """The request the assessment was created with."""
        ...

    @property
    def attempt(self) -> int:
        """1 for the first attempt, 2 for the first retry, ..."""
        ...

    @property
    def timeout_seconds(self) -> float:
        """This attempt's time limit."""
        ...

    @property
    def remaining_seconds(self) -> float:
        """Time left before the attempt's time limit."""
        ...

    @property
    def settings(self) -> Settings:
        """The store's settings (handler configuration such as the compliance server)."""
        ...

    def report_progress(self, percent: int, message: str | None = None) -> None:
        """Record progress (0-100). Raises AssessmentCancelledError once the assessment
        has been cancelled, so the handler stops and its result is discarded."""
        ...


Handler = Callable[[HandlerContext], dict[str, Any]]
