"""export and import: a round trip keeps every field and audit row; a bad file writes
nothing and names each bad line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from assessment_store import AssessmentFilters, AssessmentState, AssessmentStore
from assessment_store.errors import ImportRejectedError
from assessment_store.transfer import export_lines, import_lines
from tests.chain import audit_chain_problems
from tests.factories import failed, processing, request


def populate(store: AssessmentStore) -> None:
    store.create_assessment(request(priority=9, server_name="a"))
    done = processing(store)
    store.update_progress(done.assessment_id, 50, "half")
    store.complete_assessment(done.assessment_id, {"ok": True})
    failed(store)
    store.cancel_assessment(processing(store).assessment_id, "no")
    processing(store)  # running elsewhere at export time


def snapshot(conn: Connection) -> list[tuple[object, ...]]:
    states = conn.execute(
        text(
            "SELECT assessment_id, state, version, progress, message, priority, retry_count, "
            "request_data, result_data, error_message, created_at, updated_at, completed_at, "
            "next_retry_at, created_by FROM assessment_states ORDER BY assessment_id"
        )
    ).all()
    audits = conn.execute(
        text(
            "SELECT assessment_id, event, old_state, new_state, version_from, version_to, "
            "changed_by, change_reason, created_at FROM assessment_state_audit "
            "ORDER BY assessment_id, version_to"
        )
    ).all()
    return [tuple(r) for r in states] + [tuple(r) for r in audits]


def test_export_then_import_reproduces_every_row_and_audit_row(
    store: AssessmentStore, raw_conn: Connection, second_store: AssessmentStore
) -> None:
    populate(store)
    lines = list(export_lines(store, AssessmentFilters()))
    assert len(lines) == 5
    first = json.loads(lines[0])
    assert "assessmentId" in first and "auditTrail" in first and "requestData" in first
    assert import_lines(second_store, io.StringIO("\n".join(lines))) == 5
    with second_store.engines.primary.connect() as other:
        assert snapshot(other) == snapshot(raw_conn)
        assert audit_chain_problems(other) == []
        # The running one's worker is not ours: its lease is already over, so rescue
        # fails that attempt and retry runs it here.
        expired = other.execute(
            text("SELECT count(*) FROM assessment_leases WHERE lease_expires_at <= now()")
        ).scalar_one()
    assert expired == 1
    assert first["state"] == AssessmentState.PROCESSING.value


def test_a_bad_file_writes_nothing_and_names_every_bad_line(
    store: AssessmentStore, second_store: AssessmentStore
) -> None:
    populate(store)
    good = list(export_lines(store, AssessmentFilters()))
    broken_chain = json.loads(good[1])
    broken_chain["auditTrail"] = broken_chain["auditTrail"][:-1]
    bad_priority = json.loads(good[2])
    bad_priority["priority"] = 42
    lines = [
        good[0],
        json.dumps(broken_chain),
        json.dumps(bad_priority),
        "{not json",
        good[0],
        json.dumps({"assessmentId": "x"}),
    ]
    with pytest.raises(ImportRejectedError) as caught:
        import_lines(second_store, io.StringIO("\n".join(lines)))
    problems = caught.value.problems
    assert sorted({p.split(":")[0] for p in problems}) == [
        "line 2",
        "line 3",
        "line 4",
        "line 5",
        "line 6",
    ]
    assert any(p.startswith("line 2: auditTrail") for p in problems)
    assert any(p.startswith("line 3: priority") for p in problems)
    assert any(p.startswith("line 5: assessmentId") and "repeats line 1" in p for p in problems)
    assert any(p.startswith("line 6:") for p in problems)
    assert second_store.get_assessment_stats().total == 0


def test_importing_ids_that_already_exist_is_refused(
    store: AssessmentStore, tmp_path: Path
) -> None:
    populate(store)
    lines = "\n".join(export_lines(store, AssessmentFilters()))
    with pytest.raises(ImportRejectedError, match="already exists"):
        import_lines(store, io.StringIO(lines))
