"""Rescue and re-dispatch, in-process: exactly the right rows, once, even run twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import Connection, text

from assessment_store import AssessmentState, AssessmentStore, VersionConflictError, load_settings
from assessment_store.config import Settings
from assessment_store.dispatch import DispatchItem
from assessment_store.maintenance import redispatch_stale_pending
from tests.chain import audit_chain_problems
from tests.factories import processing, request


class RecordingDispatcher:
    """Remembers what was published (thread-safe)."""

    def __init__(self) -> None:
        self.items: list[DispatchItem] = []
        self._lock = threading.Lock()

    def dispatch(self, items: Sequence[DispatchItem]) -> None:
        with self._lock:
            self.items.extend(items)

    def close(self) -> None:
        return None


@pytest.fixture
def recorder() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def jobs_store(settings: Settings, recorder: RecordingDispatcher) -> Iterator[AssessmentStore]:
    tuned = load_settings(
        database_url=settings.database_url,
        redispatch_after_seconds=1,
        redispatch_batch_size=3,
    )
    store = AssessmentStore(tuned, dispatcher=recorder)
    yield store
    store.close()


def expire_lease(conn: Connection, assessment_id: str) -> None:
    with conn.begin():
        conn.execute(
            text(
                "UPDATE assessment_leases SET lease_expires_at = now() - interval '1 second' "
                "WHERE assessment_id = :id"
            ),
            {"id": assessment_id},
        )


def backdate(conn: Connection, seconds: int) -> None:
    with conn.begin():
        conn.execute(
            text(
                "UPDATE assessment_states SET updated_at = updated_at - make_interval(secs => :s)"
            ),
            {"s": seconds},
        )


def test_an_expired_lease_is_rescued_into_the_retry_path(
    jobs_store: AssessmentStore, raw_conn: Connection
) -> None:
    lost = processing(jobs_store)
    alive = processing(jobs_store)
    expire_lease(raw_conn, lost.assessment_id)
    report = jobs_store.run_maintenance_job("rescue")
    assert report.affected == 1
    got = jobs_store.get_state(lost.assessment_id)
    assert got.state is AssessmentState.FAILED and got.next_retry_at is not None
    assert got.error_message is not None and got.error_message.startswith("worker lost:")
    assert str(lost.worker_id) in got.error_message
    assert jobs_store.get_state(alive.assessment_id).state is AssessmentState.PROCESSING
    trail = jobs_store.get_audit_trail(lost.assessment_id)
    assert trail[-1].changed_by == "maintenance.rescue"
    assert trail[-1].change_reason.startswith("rescued: worker lost")
    assert audit_chain_problems(raw_conn) == []


def test_a_rescued_attempt_that_finishes_late_cannot_overwrite_the_rescue(
    jobs_store: AssessmentStore, raw_conn: Connection
) -> None:
    lost = processing(jobs_store)
    expire_lease(raw_conn, lost.assessment_id)
    jobs_store.run_maintenance_job("rescue")
    with pytest.raises(VersionConflictError):
        jobs_store.complete_assessment(
            lost.assessment_id, {"late": True}, expected_version=lost.version
        )
    assert jobs_store.get_state(lost.assessment_id).state is AssessmentState.FAILED


def test_two_rescuers_at_once_rescue_each_attempt_once(
    jobs_store: AssessmentStore, raw_conn: Connection
) -> None:
    ids = [processing(jobs_store).assessment_id for _ in range(20)]
    for assessment_id in ids:
        expire_lease(raw_conn, assessment_id)
    barrier = threading.Barrier(2)
    counts: list[int] = []

    def rescuer() -> None:
        barrier.wait()
        counts.append(jobs_store.run_maintenance_job("rescue").affected)

    threads = [threading.Thread(target=rescuer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sum(counts) == 20
    rescues = raw_conn.execute(
        text("SELECT count(*) FROM assessment_state_audit WHERE changed_by = 'maintenance.rescue'")
    ).scalar_one()
    assert rescues == 20
    assert audit_chain_problems(raw_conn) == []


def test_stale_pending_assessments_are_published_again_highest_priority_first(
    jobs_store: AssessmentStore, recorder: RecordingDispatcher, raw_conn: Connection
) -> None:
    low = jobs_store.create_assessment(request(priority=2))
    high = jobs_store.create_assessment(request(priority=9))
    mid = jobs_store.create_assessment(request(priority=5))
    started = processing(jobs_store).assessment_id
    recorder.items.clear()
    backdate(raw_conn, 5)
    fresh = jobs_store.create_assessment(request(priority=10))
    recorder.items.clear()
    report = jobs_store.run_maintenance_job("redispatch")
    assert report.affected == 3
    assert [i.assessment_id for i in recorder.items] == [high, mid, low]
    assert fresh not in {i.assessment_id for i in recorder.items}
    assert started not in {i.assessment_id for i in recorder.items}
    assert jobs_store.run_maintenance_job("redispatch").affected == 0, (
        "just re-published: not again yet"
    )
    counts: dict[str, int] = dict(
        raw_conn.execute(
            text(
                "SELECT assessment_id, dispatch_count FROM assessment_leases "
                "WHERE dispatched_at IS NOT NULL"
            )
        ).all()
    )
    assert counts == {low: 1, high: 1, mid: 1}


def test_redispatch_works_through_the_backlog_in_bounded_batches(
    jobs_store: AssessmentStore, recorder: RecordingDispatcher, raw_conn: Connection
) -> None:
    ids = jobs_store.batch_create_assessments([request() for _ in range(8)])
    backdate(raw_conn, 5)
    recorder.items.clear()
    assert redispatch_stale_pending(jobs_store.runtime, max_batches=2).affected == 6
    assert jobs_store.run_maintenance_job("redispatch").affected == 2
    assert sorted(i.assessment_id for i in recorder.items) == sorted(ids)


def test_two_redispatchers_at_once_publish_each_assessment_once(
    jobs_store: AssessmentStore, recorder: RecordingDispatcher, raw_conn: Connection
) -> None:
    ids = jobs_store.batch_create_assessments([request() for _ in range(30)])
    backdate(raw_conn, 5)
    recorder.items.clear()
    barrier = threading.Barrier(2)

    def runner() -> None:
        barrier.wait()
        jobs_store.run_maintenance_job("redispatch")

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    published = [i.assessment_id for i in recorder.items]
    assert sorted(published) == sorted(ids)
