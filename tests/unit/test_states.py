"""The state machine: every (state, event) pair against SPEC section 2's table."""

from __future__ import annotations

import itertools

import pytest

from assessment_store.states import (
    ALLOWED_STATE_CHANGES,
    AssessmentEvent,
    AssessmentState,
    TransitionRefusedError,
    is_allowed,
    next_state,
)

P, R, C, F, X = (
    AssessmentState.PENDING,
    AssessmentState.PROCESSING,
    AssessmentState.COMPLETED,
    AssessmentState.FAILED,
    AssessmentState.CANCELLED,
)
E = AssessmentEvent

# Written out by hand from SPEC section 2, independently of states.TRANSITIONS.
EXPECTED = {
    (None, E.CREATE): P,
    (P, E.START): R,
    (P, E.CANCEL): X,
    (R, E.PROGRESS): R,
    (R, E.COMPLETE): C,
    (R, E.FAIL): F,
    (R, E.CANCEL): X,
    (F, E.RETRY): P,
}
ALL_PAIRS = list(itertools.product([None, *AssessmentState], AssessmentEvent))


@pytest.mark.parametrize(("state", "event"), ALL_PAIRS)
def test_every_state_event_pair_follows_the_spec_table(
    state: AssessmentState | None, event: AssessmentEvent
) -> None:
    expected = EXPECTED.get((state, event))
    assert is_allowed(state, event) is (expected is not None)
    if expected is None:
        with pytest.raises(TransitionRefusedError):
            next_state(state, event)
    else:
        assert next_state(state, event) is expected


def test_allowed_state_changes_are_exactly_the_spec_rows() -> None:
    spec_rows = {(None, P), (P, R), (P, X), (R, C), (R, F), (R, X), (F, P)}
    assert spec_rows == ALLOWED_STATE_CHANGES


@pytest.mark.parametrize("terminal", [C, X])
def test_terminal_states_accept_no_event(terminal: AssessmentState) -> None:
    assert not any(is_allowed(terminal, event) for event in AssessmentEvent)


def test_state_values_are_the_lowercase_names_the_database_uses() -> None:
    assert [s.value for s in AssessmentState] == [
        "pending",
        "processing",
        "completed",
        "failed",
        "cancelled",
    ]
