"""The doorbell: how the store tells workers that assessments are ready to run.

The store commits rows first and rings afterwards; a dispatcher must never be relied
on for durability (a lost message is re-published by the maintenance sweep). The
Celery dispatcher lives in ``workers``; the store itself only knows this protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


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


class NullDispatcher:
    """Publishes nothing: for tools that only read or drive assessments themselves."""

    def dispatch(self, items: Sequence[DispatchItem]) -> None:
        return None
