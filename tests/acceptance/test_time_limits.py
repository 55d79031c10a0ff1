"""Time limits against a real prefork worker: whatever the attempt is doing when its
limit strikes (sleeping, writing progress, claiming, ignoring the soft limit), it ends
failed with an error naming the limit, recorded by the worker itself: never left for
the lease, never reported as a lost worker, never re-published without end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from assessment_store import AssessmentState, AssessmentStore
from assessment_store.changes import RESCUE_ACTOR
from tests.acceptance.conftest import wait_for
from tests.acceptance.processes import CeleryProcess
from tests.chain import audit_chain_problems
from tests.factories import request
from tests.waiting import wait_until

LIMIT_MESSAGE = "timed out: the attempt exceeded its 1s time limit"


def fails_and_starts(producer: AssessmentStore, assessment_id: str) -> tuple[list[str], int]:
    trail = producer.get_audit_trail(assessment_id)
    fails = [e.changed_by for e in trail if e.event == "fail"]
    return fails, sum(1 for e in trail if e.event == "start")


@pytest.mark.parametrize("handler", ["sleeper", "chatty"])
def test_an_attempt_past_its_limit_fails_naming_it_and_is_retried_like_any_failure(
    producer: AssessmentStore,
    system_env: dict[str, str],
    start_worker: Callable[..., CeleryProcess],
    start_beat: Callable[..., CeleryProcess],
    raw_conn: Connection,
    handler: str,
) -> None:
    # Given a worker and beat, and a handler that would run far past its 1 s limit
    # (sleeping, or writing progress back to back)
    start_worker(env={**system_env, "ASSESSMENT_STORE_MAX_RETRIES": "1"})
    start_beat()
    assessment_id = producer.create_assessment(request(assessment_type=handler, timeout=1))
    # When both attempts (the first and its one retry) hit the limit
    [final] = wait_for(producer, [assessment_id], lambda a: a.is_finished, 90)
    # Then each failed, by the worker and naming the limit, and the retry ran once
    assert final.state is AssessmentState.FAILED, final
    assert final.error_message == LIMIT_MESSAGE
    assert final.retry_count == 1
    fails, starts = fails_and_starts(producer, assessment_id)
    assert starts == 2 and len(fails) == 2
    assert RESCUE_ACTOR not in fails, "the attempt was left for the lease to run out"
    reasons = raw_conn.execute(
        text(
            "SELECT change_reason FROM assessment_state_audit "
            "WHERE assessment_id = :id AND event = 'fail' ORDER BY version_to"
        ),
        {"id": assessment_id},
    ).scalars()
    assert list(reasons) == [f"failed: {LIMIT_MESSAGE}"] * 2
    assert audit_chain_problems(raw_conn) == []


def test_a_handler_that_swallows_the_soft_limit_is_killed_and_recorded_as_timed_out(
    producer: AssessmentStore,
    system_env: dict[str, str],
    start_worker: Callable[..., CeleryProcess],
    raw_conn: Connection,
) -> None:
    # Given a worker (no beat: nothing but the worker can end the attempt) and a handler
    # that ignores the soft limit
    worker = start_worker(env={**system_env, "ASSESSMENT_STORE_MAX_RETRIES": "0"})
    assessment_id = producer.create_assessment(request(assessment_type="stubborn", timeout=1))
    # When the hard limit kills the child running it
    [final] = wait_for(producer, [assessment_id], lambda a: a.is_finished, 60)
    # Then the worker's main process records the time-out itself, naming the limit
    assert final.state is AssessmentState.FAILED, worker.log()[-3000:]
    assert final.error_message == LIMIT_MESSAGE
    fails, starts = fails_and_starts(producer, assessment_id)
    assert starts == 1 and fails == [final.worker_id]
    assert "Hard time limit" in worker.log()
    assert audit_chain_problems(raw_conn) == []


def test_a_limit_that_strikes_while_the_claim_waits_fails_the_attempt(
    producer: AssessmentStore,
    system_env: dict[str, str],
    start_worker: Callable[..., CeleryProcess],
    raw_conn: Connection,
) -> None:
    # Given an assessment whose row a test transaction holds locked, so a worker's
    # claim waits on the lock
    assessment_id = producer.create_assessment(request(assessment_type="noop", timeout=1))
    raw_conn.execute(
        text("SELECT 1 FROM assessment_states WHERE assessment_id = :id FOR UPDATE"),
        {"id": assessment_id},
    )
    worker = start_worker(env={**system_env, "ASSESSMENT_STORE_MAX_RETRIES": "0"})
    wait_until(
        lambda: _worker_writes_waiting_on_a_lock(raw_conn) > 0,
        timeout=60,
        message=lambda: "the claim never waited: " + worker.log()[-2000:],
    )
    # When the limit strikes while the claim waits, and the lock is released after it
    wait_for_soft_limit(worker)
    assert _worker_writes_waiting_on_a_lock(raw_conn) == 1, "the claim was still waiting"
    raw_conn.commit()
    # Then the attempt ends failed, naming the limit, recorded by the worker
    [final] = wait_for(producer, [assessment_id], lambda a: a.is_finished, 60)
    assert final.state is AssessmentState.FAILED, worker.log()[-3000:]
    assert final.error_message == LIMIT_MESSAGE
    fails, starts = fails_and_starts(producer, assessment_id)
    assert starts == 1 and fails == [final.worker_id]
    assert audit_chain_problems(raw_conn) == []


def test_a_limit_that_strikes_while_the_completion_waits_fails_the_attempt(
    producer: AssessmentStore,
    system_env: dict[str, str],
    start_worker: Callable[..., CeleryProcess],
    raw_conn: Connection,
    tmp_path: Path,
) -> None:
    # Given a handler that finishes the moment a gate opens, its row locked by a test
    # transaction, so that its completion waits on the lock
    worker = start_worker(env={**system_env, "ASSESSMENT_STORE_MAX_RETRIES": "0"})
    gate = tmp_path / "gate"
    assessment_id = producer.create_assessment(
        request(assessment_type="gated", server_name=f"gate:{gate}", timeout=8)
    )
    wait_for(producer, [assessment_id], lambda a: a.message == "at the gate", 60)
    raw_conn.execute(
        text("SELECT 1 FROM assessment_states WHERE assessment_id = :id FOR UPDATE"),
        {"id": assessment_id},
    )
    gate.touch()
    wait_until(
        lambda: _worker_writes_waiting_on_a_lock(raw_conn) > 0,
        timeout=60,
        message=lambda: "the completion never waited: " + worker.log()[-2000:],
    )
    assert "Soft time limit" not in worker.log(), "the limit struck before the completion"
    # When the 8 s limit strikes while the completion waits, and the lock is released
    wait_for_soft_limit(worker)
    raw_conn.commit()
    # Then the attempt ends failed, naming the limit; its result is not recorded
    [final] = wait_for(producer, [assessment_id], lambda a: a.is_finished, 60)
    assert final.state is AssessmentState.FAILED, worker.log()[-3000:]
    assert final.error_message == "timed out: the attempt exceeded its 8s time limit"
    assert final.result_data is None
    fails, starts = fails_and_starts(producer, assessment_id)
    assert starts == 1 and fails == [final.worker_id]
    assert audit_chain_problems(raw_conn) == []


def wait_for_soft_limit(worker: CeleryProcess) -> None:
    wait_until(
        lambda: "Soft time limit" in worker.log(),
        timeout=60,
        message=lambda: "the soft limit never struck: " + worker.log()[-2000:],
    )


def _worker_writes_waiting_on_a_lock(conn: Connection) -> int:
    """Worker backends of this database waiting for a lock (read from another
    connection: this one holds the lock)."""
    engine = conn.engine
    with engine.connect() as other:
        count = other.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name LIKE 'assessment-store-worker%' AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    return int(count)
