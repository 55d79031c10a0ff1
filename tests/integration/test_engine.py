"""The transition engine is the state machine that runs: every (state, event) pair goes
through ``db.transitions.apply`` against a real row, and the result is exactly what
``states.TRANSITIONS`` says (and SPEC section 2's table, written out in test_states)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, Engine, text

from assessment_store import AssessmentState, AssessmentStore
from assessment_store.changes import RETRY_RESETS
from assessment_store.db import predicates, transitions
from assessment_store.db.transitions import NOW, Fixed, Step
from assessment_store.errors import InvalidStateTransitionError
from assessment_store.policy import is_dead_letter, is_finished
from assessment_store.states import TRANSITIONS, AssessmentEvent
from tests.chain import audit_chain_problems
from tests.factories import request

STATES = list(AssessmentState)
# What each event's use case sets (assessment_store.changes), so the database's own
# constraints accept every allowed transition.
EVENT_COLUMNS: dict[AssessmentEvent, tuple[dict[str, object], Mapping[str, Fixed]]] = {
    AssessmentEvent.START: (
        {"worker_id": "w", "message": None},
        {"started_at": NOW, "progress": 0},
    ),
    AssessmentEvent.PROGRESS: ({"progress": 5, "message": None}, {}),
    AssessmentEvent.COMPLETE: ({"result_data": {}}, {"progress": 100}),
    AssessmentEvent.FAIL: ({"error_message": "x", "next_retry_at": None}, {}),
    AssessmentEvent.CANCEL: ({"message": None}, {}),
    AssessmentEvent.RETRY: ({}, RETRY_RESETS),
}


def in_state(store: AssessmentStore, state: AssessmentState) -> str:
    assessment_id = store.create_assessment(request())
    if state is AssessmentState.PENDING:
        return assessment_id
    if state is AssessmentState.CANCELLED:
        store.cancel_assessment(assessment_id)
        return assessment_id
    store.start_processing(assessment_id, "w")
    if state is AssessmentState.COMPLETED:
        store.complete_assessment(assessment_id, {})
    elif state is AssessmentState.FAILED:
        store.fail_assessment(assessment_id, "boom")
    return assessment_id


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (s, e)
        for s, e in itertools.product(STATES, AssessmentEvent)
        if e is not AssessmentEvent.CREATE
    ],
)
def test_the_engine_applies_exactly_the_transition_table(
    store: AssessmentStore,
    raw_engine: Engine,
    raw_conn: Connection,
    state: AssessmentState,
    event: AssessmentEvent,
) -> None:
    assessment_id = in_state(store, state)
    before = store.get_state(assessment_id)
    expected = TRANSITIONS.get((state, event))
    values, fixed = EVENT_COLUMNS[event]
    step = Step(assessment_id, state, "engine-test", f"{event} from {state}", values=values)
    with raw_engine.begin() as conn:
        if expected is None:
            with pytest.raises(InvalidStateTransitionError):
                transitions.apply(conn, event, [step], fixed=fixed, lease_seconds=30)
            changed = []
        else:
            changed = transitions.apply(conn, event, [step], fixed=fixed, lease_seconds=30)
    after = store.get_fresh_state(assessment_id)
    if expected is None:
        assert after == before, "a refused transition changes nothing"
    else:
        assert [row["state"] for row in changed] == [expected.value]
        assert after.state is expected and after.version == before.version + 1
        trail = store.get_audit_trail(assessment_id)
        assert (trail[-1].event, trail[-1].old_state, trail[-1].new_state) == (
            event.value,
            state,
            expected,
        )
    assert audit_chain_problems(raw_conn) == []


def test_a_stale_guard_in_a_batch_skips_only_that_row(
    store: AssessmentStore, raw_engine: Engine
) -> None:
    fresh = [in_state(store, AssessmentState.PENDING) for _ in range(3)]
    versions = {i: store.get_state(i).version for i in fresh}
    stale = fresh[1]
    store.cancel_assessment(stale)
    steps = [
        Step(
            i,
            AssessmentState.PENDING,
            "t",
            "batch",
            expected_version=versions[i],
            values=EVENT_COLUMNS[AssessmentEvent.START][0],
        )
        for i in fresh
    ]
    with raw_engine.begin() as conn:
        changed = transitions.apply(
            conn,
            AssessmentEvent.START,
            steps,
            fixed=EVENT_COLUMNS[AssessmentEvent.START][1],
            lease_seconds=30,
        )
    assert sorted(row["assessment_id"] for row in changed) == sorted([fresh[0], fresh[2]])
    assert store.get_state(stale).state is AssessmentState.CANCELLED


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("retry_at", [None, datetime(2030, 1, 1, tzinfo=UTC)])
def test_the_database_and_python_agree_on_finished_and_dead_letter(
    raw_conn: Connection, state: AssessmentState, retry_at: datetime | None
) -> None:
    row = raw_conn.execute(
        text(
            f"SELECT {predicates.FINISHED} AS finished, {predicates.DEAD_LETTER} AS dead "
            "FROM (SELECT CAST(:state AS assessment_state) AS state, "
            "CAST(:at AS timestamptz) AS next_retry_at) AS t"
        ),
        {"state": state.value, "at": retry_at},
    ).one()
    assert (row.finished, row.dead) == (
        is_finished(state, retry_at),
        is_dead_letter(state, retry_at),
    )
