"""Retention cleanup, health, and the store's behaviour when PostgreSQL is not ready."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, text

from assessment_store import AssessmentState, AssessmentStore, StoreUnavailableError, load_settings
from tests.factories import failed, processing, quiet_store, request


def age(conn: Connection, assessment_id: str, days: int) -> None:
    """Move an assessment's timestamps ``days`` into the past."""
    with conn.begin():
        conn.execute(
            text(
                "UPDATE assessment_states SET created_at = created_at - make_interval(days => :d), "
                "completed_at = completed_at - make_interval(days => :d) "
                "WHERE assessment_id = :id"
            ),
            {"d": days, "id": assessment_id},
        )


def surviving(conn: Connection) -> tuple[set[str], set[str]]:
    states = set(conn.execute(text("SELECT assessment_id FROM assessment_states")).scalars())
    audits = set(
        conn.execute(text("SELECT DISTINCT assessment_id FROM assessment_state_audit")).scalars()
    )
    return states, audits


def test_cleanup_deletes_exactly_the_old_finished_assessments_and_their_audit_rows(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    old_done = processing(store)
    store.complete_assessment(old_done.assessment_id, {})
    old_cancelled = store.create_assessment(request())
    store.cancel_assessment(old_cancelled)
    old_dead = processing(store)
    store.fail_assessment(old_dead.assessment_id, "x", permanent=True)
    old_retrying = failed(store)  # a retry is still coming: kept
    old_running = processing(store)  # not finished: kept
    new_done = processing(store)
    store.complete_assessment(new_done.assessment_id, {})
    for assessment_id in (
        old_done.assessment_id,
        old_cancelled,
        old_dead.assessment_id,
        old_retrying.assessment_id,
        old_running.assessment_id,
    ):
        age(raw_conn, assessment_id, 40)
    progress: list[int] = []
    deleted = store.cleanup_old_assessments(30, batch_size=2, progress=progress.append)
    assert deleted == 3
    assert progress == [2, 3]
    keep = {old_retrying.assessment_id, old_running.assessment_id, new_done.assessment_id}
    assert surviving(raw_conn) == (keep, keep)


def test_cleanup_stops_after_its_batch_bound(store: AssessmentStore, raw_conn: Connection) -> None:
    for _ in range(5):
        done = processing(store)
        store.complete_assessment(done.assessment_id, {})
        age(raw_conn, done.assessment_id, 40)
    assert store.cleanup_old_assessments(30, batch_size=2, max_batches=1) == 2
    assert store.cleanup_old_assessments(30, batch_size=2) == 3


def test_health_reports_database_and_redis(store: AssessmentStore) -> None:
    status = store.get_health_status()
    assert status.healthy
    assert set(status.components) == {"database", "redis"}
    assert all(c.ok and c.latency_ms is not None for c in status.components.values())


def test_health_reports_an_unreachable_redis_without_raising(database_url: str) -> None:
    store = quiet_store(load_settings(database_url=database_url, redis_url="redis://127.0.0.1:1/0"))
    status = store.get_health_status()
    store.close()
    assert not status.healthy
    assert status.components["database"].ok and not status.components["redis"].ok
    assert status.components["redis"].detail


def test_an_unmigrated_database_says_to_migrate(empty_database_url: str) -> None:
    store = quiet_store(load_settings(database_url=empty_database_url))
    try:
        with pytest.raises(StoreUnavailableError, match="assessment-store migrate"):
            store.create_assessment(request())
    finally:
        store.close()


def test_an_unreachable_database_is_a_store_unavailable_error() -> None:
    store = quiet_store(
        load_settings(database_url="postgresql+psycopg2://postgres@127.0.0.1:1/nowhere")
    )
    try:
        with pytest.raises(StoreUnavailableError, match="unreachable"):
            store.get_state("x")
        assert not store.get_health_status().components["database"].ok
    finally:
        store.close()


def test_a_state_change_made_elsewhere_is_seen_on_the_next_read(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    assessment_id = store.create_assessment(request())
    with raw_conn.begin():
        raw_conn.execute(text("UPDATE assessment_states SET priority = 9"))
    assert store.get_state(assessment_id).priority == 9
    assert store.get_state(assessment_id).state is AssessmentState.PENDING
