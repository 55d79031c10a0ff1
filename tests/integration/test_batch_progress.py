"""batch_update_progress: each update a compare-and-set with its audit row, through the
one engine, in one statement; one refusal never touches the others; input order."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Connection, event, text

from assessment_store import AssessmentStore, InvalidInputError
from assessment_store.config import Settings
from assessment_store.models import ProgressUpdate
from assessment_store.progress_batch import MAX_PROGRESS_BATCH
from tests.chain import audit_chain_problems
from tests.encrypted import K1, with_keys
from tests.factories import failed, processing, quiet_store, request


def snapshot(raw_conn: Connection) -> dict[str, tuple[int, int, int, str | None]]:
    """Each assessment's (version, progress, audit rows, message), read fresh."""
    rows = raw_conn.execute(
        text(
            "SELECT s.assessment_id, s.version, s.progress, s.message, "
            "(SELECT count(*) FROM assessment_state_audit AS a "
            " WHERE a.assessment_id = s.assessment_id) AS audits "
            "FROM assessment_states AS s"
        )
    ).mappings()
    found = {
        r["assessment_id"]: (r["version"], r["progress"], r["audits"], r["message"]) for r in rows
    }
    raw_conn.rollback()
    return found


def test_mixed_outcomes_come_back_in_input_order_and_only_successes_write(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    first = processing(store)
    pending = store.get_state(store.create_assessment(request()))
    stale = processing(store)
    guarded = processing(store)
    untouched = processing(store)
    done = failed(store)
    before = snapshot(raw_conn)

    outcomes = store.batch_update_progress(
        [
            {"assessmentId": first.assessment_id, "progress": 10, "message": "copying"},
            {"assessmentId": "no-such-assessment", "progress": 10},
            {"assessment_id": pending.assessment_id, "progress": 10},
            {"assessmentId": stale.assessment_id, "progress": 10, "expectedVersion": 1},
            {"assessmentId": untouched.assessment_id, "progress": 150},
            ProgressUpdate(
                assessment_id=guarded.assessment_id,
                progress=55,
                expected_version=guarded.version,
            ),
            {"assessmentId": untouched.assessment_id, "progress": 5, "message": "x" * 4001},
            {"assessmentId": done.assessment_id, "progress": 10},
            {"assessmentId": "", "progress": 10},
        ],
        changed_by="ops-console",
    )

    summary = [(o.assessment_id, o.ok, o.error.code if o.error else None) for o in outcomes]
    assert summary == [
        (first.assessment_id, True, None),
        ("no-such-assessment", False, "ASSESSMENT_NOT_FOUND"),
        (pending.assessment_id, False, "INVALID_STATE_TRANSITION"),
        (stale.assessment_id, False, "VERSION_CONFLICT"),
        (untouched.assessment_id, False, "VALIDATION_ERROR"),
        (guarded.assessment_id, True, None),
        (untouched.assessment_id, False, "VALIDATION_ERROR"),
        (done.assessment_id, False, "INVALID_STATE_TRANSITION"),
        ("", False, "VALIDATION_ERROR"),
    ]
    assert outcomes[0].version == first.version + 1 and outcomes[5].version == guarded.version + 1
    assert all(o.version is None and o.error and o.error.message for o in outcomes if not o.ok)
    assert "at version 2, not the expected 1" in outcomes[3].error.message  # type: ignore[union-attr]
    assert "progress" in outcomes[4].error.message  # type: ignore[union-attr]
    assert "message" in outcomes[6].error.message  # type: ignore[union-attr]

    after = snapshot(raw_conn)
    for changed, progress, message in ((first, 10, "copying"), (guarded, 55, None)):
        version, _, audits, _ = before[changed.assessment_id]
        assert after[changed.assessment_id] == (version + 1, progress, audits + 1, message)
    for refused in (pending, stale, untouched, done):
        assert after[refused.assessment_id] == before[refused.assessment_id]
    assert set(after) == set(before)
    assert audit_chain_problems(raw_conn) == []
    trail = store.get_audit_trail(first.assessment_id)
    assert (trail[-1].event, trail[-1].changed_by, trail[-1].change_reason) == (
        "progress",
        "ops-console",
        "progress 10%: copying",
    )
    assert store.get_state(first.assessment_id).progress == 10


def test_an_id_given_twice_is_updated_in_input_order(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    one = processing(store)
    two = processing(store)
    outcomes = store.batch_update_progress(
        [
            {"assessmentId": one.assessment_id, "progress": 20},
            {"assessmentId": two.assessment_id, "progress": 20, "expectedVersion": two.version},
            {"assessmentId": one.assessment_id, "progress": 30, "message": "later"},
            # Its guard names the version before the batch: the update above took it.
            {"assessmentId": two.assessment_id, "progress": 90, "expectedVersion": two.version},
            {"assessmentId": two.assessment_id, "progress": 40, "expectedVersion": two.version + 1},
        ]
    )
    assert [(o.ok, o.version) for o in outcomes] == [
        (True, one.version + 1),
        (True, two.version + 1),
        (True, one.version + 2),
        (False, None),
        (True, two.version + 2),
    ]
    assert outcomes[3].error and outcomes[3].error.code == "VERSION_CONFLICT"
    current = snapshot(raw_conn)
    assert current[one.assessment_id][:2] == (one.version + 2, 30)
    assert current[two.assessment_id][:2] == (two.version + 2, 40)
    assert audit_chain_problems(raw_conn) == []


def test_a_batch_is_one_write_statement(store: AssessmentStore, raw_conn: Connection) -> None:
    running = [processing(store) for _ in range(30)]
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "UPDATE assessment_states" in statement:
            statements.append(statement)

    for engine in {store.engines.primary, store.engines.reader}:
        event.listen(engine, "before_cursor_execute", record)
    outcomes = store.batch_update_progress(
        [{"assessmentId": a.assessment_id, "progress": 50} for a in running]
    )
    assert all(o.ok for o in outcomes) and len(statements) == 1
    assert {v[:2] for v in snapshot(raw_conn).values()} == {(3, 50)}
    assert audit_chain_problems(raw_conn) == []


def test_the_batch_size_is_bounded_and_the_shape_checked(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    running = processing(store)
    before = snapshot(raw_conn)
    too_many = [{"assessmentId": running.assessment_id, "progress": 1}] * (MAX_PROGRESS_BATCH + 1)
    with pytest.raises(InvalidInputError, match="at most 1000 updates") as refused:
        store.batch_update_progress(too_many)
    assert refused.value.field == "updates"
    with pytest.raises(ValidationError, match="progress"):
        store.batch_update_progress([{"assessmentId": running.assessment_id, "progress": "5"}])
    with pytest.raises(ValidationError, match="extra"):
        store.batch_update_progress([{"assessmentId": running.assessment_id, "progres": 5}])
    assert snapshot(raw_conn) == before
    assert store.batch_update_progress([]) == []


def test_a_batch_works_the_same_with_encryption_on(
    settings: Settings, raw_conn: Connection
) -> None:
    encrypted = quiet_store(with_keys(settings, f"k1:{K1}"))
    try:
        running = processing(encrypted)
        outcomes = encrypted.batch_update_progress(
            [
                {"assessmentId": running.assessment_id, "progress": 70, "message": "sealed?"},
                {"assessmentId": running.assessment_id, "progress": 80, "expectedVersion": 1},
            ]
        )
        assert [(o.ok, o.version) for o in outcomes] == [(True, running.version + 1), (False, None)]
        assert encrypted.get_state(running.assessment_id).progress == 70
        assert audit_chain_problems(raw_conn) == []
    finally:
        encrypted.close()
