"""Changing assessments: the lifecycle, refusals, stale versions, retries and cancels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, text

from assessment_store import (
    AssessmentNotFoundError,
    AssessmentState,
    AssessmentStore,
    InvalidInputError,
    InvalidStateTransitionError,
    VersionConflictError,
)
from assessment_store.http.errors import STATUS_OF_CODE
from tests.chain import audit_chain_problems
from tests.factories import failed, processing, request


def snapshot(conn: Connection, assessment_id: str) -> tuple[object, ...]:
    row = conn.execute(
        text("SELECT * FROM assessment_states WHERE assessment_id = :id"), {"id": assessment_id}
    ).one()
    audits = conn.execute(
        text("SELECT count(*) FROM assessment_state_audit WHERE assessment_id = :id"),
        {"id": assessment_id},
    ).scalar_one()
    return (*row, audits)


def test_the_happy_path_runs_pending_processing_completed_with_one_audit_row_per_version(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    assessment_id = store.create_assessment(request())
    started = store.start_processing(assessment_id, "worker-1")
    assert (started.state, started.version, started.worker_id) == (
        AssessmentState.PROCESSING,
        2,
        "worker-1",
    )
    assert started.started_at is not None
    progressed = store.update_progress(assessment_id, 40, "probing")
    assert (progressed.progress, progressed.message, progressed.version) == (40, "probing", 3)
    done = store.complete_assessment(assessment_id, {"reachable": True})
    assert (done.state, done.version, done.progress) == (AssessmentState.COMPLETED, 4, 100)
    assert done.result_data == {"reachable": True}
    assert done.completed_at is not None and done.completed_at >= done.started_at  # type: ignore[operator]
    trail = store.get_audit_trail(assessment_id)
    assert [e.event for e in trail] == ["create", "start", "progress", "complete"]
    assert [e.version_to for e in trail] == [1, 2, 3, 4]
    assert trail[1].changed_by == "worker-1"
    assert audit_chain_problems(raw_conn) == []


def test_a_lease_is_taken_on_start_and_released_on_finish(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    started = processing(store)
    lease = raw_conn.execute(
        text(
            "SELECT worker_id, lease_expires_at > now() FROM assessment_leases "
            "WHERE assessment_id = :id"
        ),
        {"id": started.assessment_id},
    ).one()
    assert tuple(lease) == (started.worker_id, True)
    store.complete_assessment(started.assessment_id, {})
    released = raw_conn.execute(
        text("SELECT worker_id, lease_expires_at FROM assessment_leases WHERE assessment_id = :id"),
        {"id": started.assessment_id},
    ).one()
    assert tuple(released) == (None, None)


@pytest.mark.parametrize(
    ("drive", "attempt"),
    [
        ("pending", lambda s, i: s.complete_assessment(i, {})),
        ("pending", lambda s, i: s.fail_assessment(i, "x")),
        ("pending", lambda s, i: s.update_progress(i, 5)),
        ("processing", lambda s, i: s.start_processing(i, "w2")),
        ("completed", lambda s, i: s.cancel_assessment(i)),
        ("completed", lambda s, i: s.fail_assessment(i, "late")),
        ("completed", lambda s, i: s.complete_assessment(i, {"again": 1})),
        ("cancelled", lambda s, i: s.complete_assessment(i, {})),
        ("cancelled", lambda s, i: s.start_processing(i, "w2")),
        ("failed", lambda s, i: s.complete_assessment(i, {})),
        ("failed", lambda s, i: s.cancel_assessment(i)),
    ],
)
def test_a_transition_outside_the_table_is_refused_and_changes_nothing(
    store: AssessmentStore, raw_conn: Connection, drive: str, attempt: object
) -> None:
    assessment_id = store.create_assessment(request())
    if drive != "pending":
        store.start_processing(assessment_id, "w1")
    if drive == "completed":
        store.complete_assessment(assessment_id, {"ok": 1})
    elif drive == "cancelled":
        store.cancel_assessment(assessment_id, "stop")
    elif drive == "failed":
        store.fail_assessment(assessment_id, "x")
    before = snapshot(raw_conn, assessment_id)
    with pytest.raises(InvalidStateTransitionError) as caught:
        attempt(store, assessment_id)  # type: ignore[operator]
    assert caught.value.code == "INVALID_STATE_TRANSITION"
    assert STATUS_OF_CODE[caught.value.code] == 409
    assert snapshot(raw_conn, assessment_id) == before


def test_a_stale_expected_version_is_a_conflict_and_writes_nothing(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    started = processing(store)
    store.update_progress(started.assessment_id, 10, expected_version=started.version)
    before = snapshot(raw_conn, started.assessment_id)
    with pytest.raises(VersionConflictError) as caught:
        store.update_progress(started.assessment_id, 20, expected_version=started.version)
    assert (caught.value.expected_version, caught.value.actual_version) == (2, 3)
    assert caught.value.code == "VERSION_CONFLICT"
    assert snapshot(raw_conn, started.assessment_id) == before


def test_an_unknown_id_is_not_found(store: AssessmentStore) -> None:
    for call in (
        lambda: store.get_state("nope"),
        lambda: store.start_processing("nope", "w"),
        lambda: store.cancel_assessment("nope"),
        lambda: store.get_audit_trail("nope"),
    ):
        with pytest.raises(AssessmentNotFoundError, match="nope"):
            call()


def test_a_failure_with_retries_left_schedules_the_next_retry_with_backoff(
    store: AssessmentStore,
) -> None:
    before = datetime.now(UTC)
    got = failed(store, "connection refused")
    assert got.state is AssessmentState.FAILED and got.error_message == "connection refused"
    assert got.completed_at is not None and got.next_retry_at is not None
    # Fixture settings: base 1s, so the first retry waits 0.5-1s.
    assert before + timedelta(seconds=0.5) <= got.next_retry_at
    assert got.next_retry_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert not got.is_finished


def test_a_permanent_failure_schedules_no_retry(store: AssessmentStore) -> None:
    started = processing(store)
    got = store.fail_assessment(started.assessment_id, "bad config", permanent=True)
    assert got.next_retry_at is None and got.is_finished
    trail = store.get_audit_trail(started.assessment_id)
    assert trail[-1].change_reason.startswith("permanent failure")


def test_retries_run_until_exhausted_then_the_assessment_is_a_dead_letter(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    got = failed(store)
    for attempt in range(1, store.settings.max_retries + 1):
        assert store.batch_retry_failed_assessments() == [got.assessment_id]
        pending = store.get_state(got.assessment_id)
        assert (pending.state, pending.retry_count) == (AssessmentState.PENDING, attempt)
        assert pending.completed_at is None and pending.error_message is None
        store.start_processing(got.assessment_id, "w")
        got = store.fail_assessment(got.assessment_id, f"boom {attempt}")
    assert got.next_retry_at is None and got.retry_count == store.settings.max_retries
    assert store.batch_retry_failed_assessments() == []
    assert store.get_assessment_stats().dead_letters == 1
    assert audit_chain_problems(raw_conn) == []


def test_only_due_failures_are_retried_by_the_scheduled_path(store: AssessmentStore) -> None:
    due = failed(store)
    not_yet = failed(store)
    with store.engines.primary.begin() as conn:
        conn.execute(
            text(
                "UPDATE assessment_states SET next_retry_at = now() - interval '1 second' "
                "WHERE assessment_id = :id"
            ),
            {"id": due.assessment_id},
        )
        conn.execute(
            text(
                "UPDATE assessment_states SET next_retry_at = now() + interval '1 hour' "
                "WHERE assessment_id = :id"
            ),
            {"id": not_yet.assessment_id},
        )
    assert store.run_maintenance_job("retry").affected == 1
    assert store.get_state(due.assessment_id).state is AssessmentState.PENDING
    assert store.get_state(not_yet.assessment_id).state is AssessmentState.FAILED


@pytest.mark.parametrize("running", [False, True])
def test_cancel_ends_a_pending_or_running_assessment_with_the_reason(
    store: AssessmentStore, running: bool
) -> None:
    assessment_id = (
        processing(store) if running else store.get_state(store.create_assessment(request()))
    ).assessment_id
    got = store.cancel_assessment(assessment_id, "operator asked")
    assert got.state is AssessmentState.CANCELLED and got.completed_at is not None
    assert got.message == "operator asked"
    assert store.get_audit_trail(assessment_id)[-1].change_reason == "cancelled: operator asked"


def test_a_cancelled_assessment_cannot_be_completed_by_a_late_worker(
    store: AssessmentStore,
) -> None:
    started = processing(store)
    store.cancel_assessment(started.assessment_id)
    with pytest.raises(InvalidStateTransitionError):
        store.complete_assessment(started.assessment_id, {"late": True})
    assert store.get_state(started.assessment_id).result_data is None


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s, i: s.update_progress(i, 101), "progress"),
        (lambda s, i: s.update_progress(i, -1), "progress"),
        (lambda s, i: s.update_progress(i, 10.5), "progress"),
        (lambda s, i: s.update_progress(i, "ten"), "progress"),
        (lambda s, i: s.update_progress(i, True), "progress"),
        (lambda s, i: s.update_progress(i, 5, "x" * 5000), "message"),
        (lambda s, i: s.complete_assessment(i, ["not", "an", "object"]), "result"),
        (lambda s, i: s.complete_assessment(i, {"when": datetime.now(UTC)}), "result"),
        (lambda s, i: s.complete_assessment(i, {"nan": float("nan")}), "result"),
        (lambda s, i: s.complete_assessment(i, {"nul": "a\x00b"}), "result"),
        (lambda s, i: s.fail_assessment(i, ""), "error"),
        (lambda s, i: s.cancel_assessment(i, 42), "reason"),
        (lambda s, i: s.wait_for_completion(i, timeout=-1), "timeout"),
        (lambda s, i: s.get_state(i + "\x00"), "assessmentId"),
        (lambda s, i: s.cancel_assessment(i + "\x00"), "assessmentId"),
        (lambda s, i: s.get_audit_trail("x" * 300), "assessmentId"),
    ],
)
def test_bad_arguments_are_refused_naming_the_field_and_change_nothing(
    store: AssessmentStore, raw_conn: Connection, call: object, field: str
) -> None:
    started = processing(store)
    before = snapshot(raw_conn, started.assessment_id)
    with pytest.raises(InvalidInputError) as caught:
        call(store, started.assessment_id)  # type: ignore[operator]
    assert caught.value.field == field and str(caught.value).startswith(f"{field}:")
    assert caught.value.code == "VALIDATION_ERROR"
    assert snapshot(raw_conn, started.assessment_id) == before
