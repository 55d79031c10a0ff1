"""The engine's statements run prepared: once per connection, errors as SQLAlchemy
raises them, and only claims and progress commit without waiting for the disk."""

from __future__ import annotations

import pytest
from sqlalchemy import exc, text

from assessment_store import AssessmentState, AssessmentStore
from assessment_store.db import prepared
from assessment_store.db.transitions import RELAXED_COMMIT_EVENTS
from assessment_store.states import ENDED_STATES, TRANSITIONS, AssessmentEvent
from tests.factories import processing

SETTING = text("SELECT current_setting('synchronous_commit') AS setting, :tag AS tag")


def test_only_a_non_durable_step_skips_waiting_for_the_disk(store: AssessmentStore) -> None:
    with store.runtime.engines.reader.connect() as conn:
        durable = prepared.execute(conn, SETTING, {"tag": "a"})
        relaxed = prepared.execute(conn, SETTING, {"tag": "b"}, durable=False)
        after = prepared.execute(conn, SETTING, {"tag": "c"})
    assert [durable[0]["setting"], relaxed[0]["setting"], after[0]["setting"]] == [
        "on",
        "off",
        "on",
    ], "SET LOCAL lasts for that one statement's transaction only"
    assert [durable[0]["tag"], relaxed[0]["tag"], after[0]["tag"]] == ["a", "b", "c"]


def test_a_statement_is_prepared_once_per_connection(store: AssessmentStore) -> None:
    with store.runtime.engines.reader.connect() as conn:
        for tag in ("x", "y", "z"):
            prepared.execute(conn, SETTING, {"tag": tag})
        names = conn.execute(
            text("SELECT name FROM pg_prepared_statements WHERE statement LIKE '%synchronous%'")
        ).scalars()
        assert len(list(names)) == 1


def test_a_failing_prepared_statement_raises_the_sqlalchemy_error(
    store: AssessmentStore,
) -> None:
    running = processing(store)
    duplicate = text(
        "INSERT INTO assessment_state_audit (assessment_id, event, new_state, version_from, "
        "version_to, changed_by, change_reason) "
        "VALUES (:id, 'start', 'processing', 1, 2, 't', 'duplicate') RETURNING id"
    )
    with store.runtime.engines.reader.connect() as conn:
        with pytest.raises(exc.IntegrityError):
            prepared.execute(conn, duplicate, {"id": running.assessment_id})
        # The connection is still good for the next statement.
        assert prepared.execute(conn, SETTING, {"tag": "ok"})[0]["tag"] == "ok"
    assert store.get_state(running.assessment_id).state is AssessmentState.PROCESSING


def test_no_step_into_an_ended_state_is_relaxed() -> None:
    relaxed_targets = {
        target for (_, event), target in TRANSITIONS.items() if event in RELAXED_COMMIT_EVENTS
    }
    assert {AssessmentEvent.START, AssessmentEvent.PROGRESS} == RELAXED_COMMIT_EVENTS
    assert relaxed_targets.isdisjoint(ENDED_STATES), "a terminal transition is always durable"
