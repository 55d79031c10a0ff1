"""The database itself refuses invalid rows, even when the application is bypassed."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DataError, IntegrityError

INSERT = (
    "INSERT INTO assessment_states (assessment_id, state, version, request_data, priority, "
    "progress, retry_count, assessment_type, source, created_by, completed_at, started_at, "
    "next_retry_at) VALUES (:id, CAST(:state AS assessment_state), :version, "
    "CAST(:request AS jsonb), :priority, :progress, :retry_count, 'health', 'installer', 't', "
    "CAST(:completed_at AS timestamptz), CAST(:started_at AS timestamptz), "
    "CAST(:next_retry_at AS timestamptz))"
)
VALID = {
    "id": "ok-1",
    "state": "pending",
    "version": 1,
    "request": "{}",
    "priority": 5,
    "progress": 0,
    "retry_count": 0,
    "completed_at": None,
    "started_at": None,
    "next_retry_at": None,
}


def insert(conn: Connection, **overrides: object) -> None:
    with conn.begin():
        conn.execute(text(INSERT), {**VALID, **overrides})


def test_a_valid_row_is_accepted(raw_conn: Connection) -> None:
    insert(raw_conn)
    assert raw_conn.execute(text("SELECT count(*) FROM assessment_states")).scalar_one() == 1


@pytest.mark.parametrize(
    ("overrides", "constraint"),
    [
        ({"progress": 101}, "ck_assessment_states_progress_range"),
        ({"progress": -1}, "ck_assessment_states_progress_range"),
        ({"priority": 0}, "ck_assessment_states_priority_range"),
        ({"priority": 11}, "ck_assessment_states_priority_range"),
        ({"version": 0}, "ck_assessment_states_version_positive"),
        ({"retry_count": -1}, "ck_assessment_states_retry_count_non_negative"),
        ({"request": "[1, 2]"}, "ck_assessment_states_request_data_object"),
        ({"id": ""}, "ck_assessment_states_assessment_id_length"),
        (
            {"state": "completed", "started_at": "2026-01-01T00:00:00Z"},
            "ck_assessment_states_completed_at_iff_finished",
        ),
        (
            {"completed_at": "2026-01-01T00:00:00Z"},
            "ck_assessment_states_completed_at_iff_finished",
        ),
        (
            {"next_retry_at": "2026-01-01T00:00:00Z"},
            "ck_assessment_states_next_retry_only_when_failed",
        ),
        ({"state": "processing"}, "ck_assessment_states_started_at_when_run"),
    ],
)
def test_an_invalid_value_is_rejected_by_the_database(
    raw_conn: Connection, overrides: dict[str, object], constraint: str
) -> None:
    with pytest.raises(IntegrityError) as caught:
        insert(raw_conn, **overrides)
    assert caught.value.orig is not None
    assert caught.value.orig.diag.constraint_name == constraint  # type: ignore[attr-defined]


def test_an_unknown_state_is_rejected_by_the_enum(raw_conn: Connection) -> None:
    with pytest.raises(DataError, match="assessment_state"):
        insert(raw_conn, state="paused")


def test_a_duplicate_id_is_rejected(raw_conn: Connection) -> None:
    insert(raw_conn)
    with pytest.raises(IntegrityError, match="pk_assessment_states"):
        insert(raw_conn)


AUDIT = (
    "INSERT INTO assessment_state_audit (assessment_id, event, old_state, new_state, "
    "version_from, version_to, changed_by, change_reason) VALUES ('ok-1', 'x', "
    "CAST(:old AS assessment_state), CAST(:new AS assessment_state), :vf, :vt, 'me', 'why')"
)


@pytest.mark.parametrize(
    ("row", "constraint"),
    [
        (
            {"old": "pending", "new": "processing", "vf": 1, "vt": 3},
            "ck_assessment_state_audit_version_step_is_one",
        ),
        (
            {"old": None, "new": "pending", "vf": 1, "vt": 2},
            "ck_assessment_state_audit_first_row_has_no_old_state",
        ),
        (
            {"old": None, "new": "completed", "vf": None, "vt": 1},
            "ck_assessment_state_audit_chain_starts_pending",
        ),
        (
            {"old": None, "new": "pending", "vf": None, "vt": 1},
            "uq_assessment_state_audit_assessment_id_version_to",
        ),
    ],
)
def test_the_audit_table_refuses_rows_that_would_break_the_chain(
    raw_conn: Connection, row: dict[str, object], constraint: str
) -> None:
    insert(raw_conn)
    with raw_conn.begin():
        raw_conn.execute(text(AUDIT), {"old": None, "new": "pending", "vf": None, "vt": 1})
    with pytest.raises(IntegrityError) as caught, raw_conn.begin():
        raw_conn.execute(text(AUDIT), row)
    assert caught.value.orig.diag.constraint_name == constraint  # type: ignore[union-attr]


def test_an_audit_row_needs_an_existing_assessment(raw_conn: Connection) -> None:
    with pytest.raises(IntegrityError, match="fk_assessment_state_audit"), raw_conn.begin():
        raw_conn.execute(text(AUDIT), {"old": None, "new": "pending", "vf": None, "vt": 1})
