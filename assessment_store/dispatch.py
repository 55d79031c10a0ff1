"""The doorbell: how the store tells workers that assessments are ready to run.

The store commits rows first and rings afterwards; a dispatcher must never be relied
on for durability (a lost message is re-published by the maintenance sweep). The
Celery dispatcher is ``assessment_store.publishing``; the store only knows this
protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from assessment_store.config import Settings
from assessment_store.models import AssessmentRequest
from assessment_store.policy import attempt_timeout_seconds


@dataclass(frozen=True, slots=True)
class DispatchItem:
    """One assessment to (re-)publish: its priority picks the queue, its timeout the
    attempt's time limits."""

    assessment_id: str
    priority: int
    timeout_seconds: float


class Dispatcher(Protocol):
    """Publishes ready assessments; may fail or drop messages without losing work."""

    def dispatch(self, items: Sequence[DispatchItem]) -> None:
        """Publish ``items``; raise or return quietly, the rows stay pending either way."""

    def close(self) -> None:
        """Release any broker connection."""


class NullDispatcher:
    """Publishes nothing. Only asked for explicitly (tests, tools that drive
    assessments themselves): a store made without a dispatcher publishes."""

    def dispatch(self, items: Sequence[DispatchItem]) -> None:
        return None

    def close(self) -> None:
        return None


def dispatch_item(
    assessment_id: str, priority: int, request: AssessmentRequest, settings: Settings
) -> DispatchItem:
    """What to publish for a stored pending assessment."""
    return DispatchItem(
        assessment_id,
        priority,
        attempt_timeout_seconds(request.requested_timeout_seconds, settings),
    )
