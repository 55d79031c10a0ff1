"""The assessment state machine: states, events, the transition table. Pure, no I/O."""

from __future__ import annotations

from enum import StrEnum


class AssessmentState(StrEnum):
    """Where an assessment is in its life; the values are the database ENUM's labels."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AssessmentEvent(StrEnum):
    """Something that happens to an assessment; each maps to at most one next state."""

    CREATE = "create"
    START = "start"
    PROGRESS = "progress"
    COMPLETE = "complete"
    FAIL = "fail"
    CANCEL = "cancel"
    RETRY = "retry"


# (current state or None for a new row, event) -> next state. Anything absent is refused.
TRANSITIONS: dict[tuple[AssessmentState | None, AssessmentEvent], AssessmentState] = {
    (None, AssessmentEvent.CREATE): AssessmentState.PENDING,
    (AssessmentState.PENDING, AssessmentEvent.START): AssessmentState.PROCESSING,
    (AssessmentState.PENDING, AssessmentEvent.CANCEL): AssessmentState.CANCELLED,
    # Progress is a change of the row (new version, audited) without a change of state.
    (AssessmentState.PROCESSING, AssessmentEvent.PROGRESS): AssessmentState.PROCESSING,
    (AssessmentState.PROCESSING, AssessmentEvent.COMPLETE): AssessmentState.COMPLETED,
    (AssessmentState.PROCESSING, AssessmentEvent.FAIL): AssessmentState.FAILED,
    (AssessmentState.PROCESSING, AssessmentEvent.CANCEL): AssessmentState.CANCELLED,
    (AssessmentState.FAILED, AssessmentEvent.RETRY): AssessmentState.PENDING,
}

# The state changes SPEC section 2 allows, derived from the table above.
ALLOWED_STATE_CHANGES: frozenset[tuple[AssessmentState | None, AssessmentState]] = frozenset(
    (source, target) for (source, _), target in TRANSITIONS.items() if source != target
)

# States in which the last attempt has ended, so completed_at is set (SPEC section 3):
# final, or (failed) final until a retry. Whether a failed one is *finished* for a
# waiter is a policy question (see assessment_store.policy).
ENDED_STATES: frozenset[AssessmentState] = frozenset(
    {AssessmentState.COMPLETED, AssessmentState.FAILED, AssessmentState.CANCELLED}
)
# States nothing can leave.
TERMINAL_STATES: frozenset[AssessmentState] = frozenset(
    state
    for state in AssessmentState
    if not any(source is state for (source, _event) in TRANSITIONS)
)


class TransitionRefusedError(Exception):
    """Raised by :func:`next_state` when the table has no entry for (state, event)."""

    def __init__(self, state: AssessmentState | None, event: AssessmentEvent) -> None:
        super().__init__(f"no transition from {state} on {event}")
        self.state = state
        self.event = event


def next_state(state: AssessmentState | None, event: AssessmentEvent) -> AssessmentState:
    """The state after ``event`` happens in ``state``, or TransitionRefusedError."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise TransitionRefusedError(state, event) from None


def is_allowed(state: AssessmentState | None, event: AssessmentEvent) -> bool:
    """Whether ``event`` may happen in ``state``."""
    return (state, event) in TRANSITIONS


def sources_of(event: AssessmentEvent) -> frozenset[AssessmentState | None]:
    """The states in which ``event`` may happen."""
    return frozenset(state for (state, candidate), _ in TRANSITIONS.items() if candidate is event)


def intended_state(event: AssessmentEvent) -> AssessmentState:
    """The state ``event`` leads to from any state it is allowed in.

    Only for naming the target in a refusal ("cannot go from completed to cancelled"):
    decisions always go through :func:`next_state`. Each event of the table leads to one
    state whatever its source (tests/unit/test_states.py holds the table to that).
    """
    for (_, candidate_event), target in TRANSITIONS.items():
        if candidate_event is event:
            return target
    raise ValueError(f"unknown event {event!r}")  # pragma: no cover - enum is closed
