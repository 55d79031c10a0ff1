"""The legacy side of the migration: a small pluggable interface.

A legacy backend is whatever ran assessments before the store: the project ships one,
:class:`~assessment_store.migration.emitter.EventEmitterBackend`, an in-process event
emitter that behaves like the old system (events by name, nothing persisted). Another
(a bridge to a legacy service, say) plugs into the facade by implementing
:class:`LegacyBackend`: the facade sends it the new assessments the routing gives the
legacy side, and asks it about them for life.

Events use the seed's names (:data:`SEED_EVENT_TYPES`) and the store's message type,
:class:`~assessment_store.events.AssessmentEventMessage`, so a subscriber cannot tell
which side an event came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, runtime_checkable

from assessment_store.events import EventHandler
from assessment_store.models import Assessment, AssessmentRequest

# The seed's event names (seed 002, AuditServiceIntegration), in lifecycle order.
SEED_EVENT_TYPES: Final = (
    "assessment.created",
    "assessment.started",
    "assessment.progress",
    "assessment.completed",
    "assessment.failed",
    "assessment.cancelled",
)
# A failed assessment put back to pending (the store's automatic or manual retry).
RETRIED: Final = "assessment.retried"
# The old emitter's catch-all (seed 002, AssessmentStateManager.updateState): every
# change of any assessment, whatever its kind. Delivered with this type.
UPDATED: Final = "assessment.updated"
EVENT_TYPES: Final = (*SEED_EVENT_TYPES, RETRIED, UPDATED)
# The seed's audit action and result of each event (AuditServiceIntegration).
AUDIT_ACTIONS: Final = {name: name.replace(".", "_") for name in EVENT_TYPES}


def audit_result(event_type: str) -> str:
    """The seed's audit result of an event: success, failed or pending."""
    if event_type == "assessment.completed":
        return "success"
    if event_type == "assessment.failed":
        return "failed"
    return "pending"


@dataclass(frozen=True, slots=True)
class LegacyCounts:
    """What a legacy backend holds: every assessment it still knows of, and those not
    finished yet (pending or processing: work that is lost if the process stops)."""

    held: int = 0
    in_flight: int = 0
    by_state: Mapping[str, int] = field(default_factory=dict)


class EventSubscription(Protocol):
    """A live subscription; ``close`` stops its deliveries."""

    @property
    def active(self) -> bool: ...

    def close(self, timeout: float = 5.0) -> None: ...


@runtime_checkable
class LegacyBackend(Protocol):
    """What the facade needs of the legacy side.

    Errors are the store's: AssessmentNotFoundError for an id the backend does not
    hold, AssessmentTimeoutError when a wait runs out, AssessmentConflictError for a
    client id reused with another request, InvalidStateTransitionError for a change
    the state table refuses.
    """

    @property
    def name(self) -> str:
        """A short name for status and metrics (``event-emitter``)."""
        ...

    def create_assessment(
        self, assessment_id: str, request: AssessmentRequest, *, created_by: str
    ) -> str:
        """Take a new assessment under ``assessment_id`` (chosen by the facade) and run
        it; returns the id. Repeating the same request under the same id is a no-op."""
        ...

    def holds(self, assessment_id: str) -> bool:
        """Whether this backend knows the assessment."""
        ...

    def get_state(self, assessment_id: str) -> Assessment: ...

    def wait_for_completion(self, assessment_id: str, timeout: float = 30.0) -> Assessment:
        """Block until finished (completed, failed or cancelled)."""
        ...

    def cancel_assessment(self, assessment_id: str, reason: str | None = None) -> Assessment: ...

    def subscribe(self, event_types: Sequence[str], handler: EventHandler) -> EventSubscription:
        """Call ``handler`` for every event of ``event_types`` (the seed's names)."""
        ...

    def counts(self) -> LegacyCounts: ...

    def close(self) -> None:
        """Stop: what is still in flight is given a short while to finish."""
        ...
