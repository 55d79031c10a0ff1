"""Real prefork workers on real Redis and PostgreSQL: the happy path and its edges."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, text

from assessment_store import AssessmentState, AssessmentStore
from assessment_store.dispatch import dispatch_item
from tests.acceptance.conftest import wait_for
from tests.acceptance.processes import CeleryProcess
from tests.chain import audit_chain_problems
from tests.factories import request

FINISHED = {AssessmentState.COMPLETED, AssessmentState.CANCELLED}


def test_a_batch_created_by_a_producer_is_run_to_completion_by_a_worker(
    producer: AssessmentStore, start_worker: Callable[..., CeleryProcess], raw_conn: Connection
) -> None:
    start_worker()
    ids = producer.batch_create_assessments(
        [request(assessment_type="noop", priority=p) for p in range(1, 11)]
    )
    states = wait_for(producer, ids, lambda a: a.state is AssessmentState.COMPLETED, 60)
    assert [s.state for s in states] == [AssessmentState.COMPLETED] * 10
    assert all(s.result_data == {"ok": True} for s in states)
    assert all(s.worker_id and s.worker_id.startswith("w1@") for s in states)
    assert audit_chain_problems(raw_conn) == []


def test_the_same_task_delivered_twice_completes_once_and_logs_no_error(
    producer: AssessmentStore, start_worker: Callable[..., CeleryProcess], raw_conn: Connection
) -> None:
    assessment_id = producer.create_assessment(
        request(assessment_type="sleepy", server_name="sleep:0.5")
    )
    # A second, duplicate message for the same assessment, as a redelivery would be.
    stored = producer.get_state(assessment_id)
    producer.runtime.publish(
        [dispatch_item(assessment_id, stored.priority, stored.request_data, producer.settings)]
    )
    process = start_worker(concurrency=2)
    [final] = wait_for(producer, [assessment_id], lambda a: a.state in FINISHED, 60)
    assert final.state is AssessmentState.COMPLETED
    completions = raw_conn.execute(
        text("SELECT count(*) FROM assessment_state_audit WHERE new_state = 'completed'")
    ).scalar_one()
    assert completions == 1
    # The second delivery found nothing to claim, and said so once, quietly.
    wait_until_logged(process, "duplicate_delivery")
    log = process.log()
    assert "ERROR" not in log and "Traceback" not in log
    assert log.count(f"duplicate_delivery: {assessment_id}") == 1


def test_cancelling_a_running_assessment_stops_it_and_discards_its_result(
    producer: AssessmentStore, start_worker: Callable[..., CeleryProcess]
) -> None:
    # Given a handler that reports progress until something stops it
    start_worker()
    assessment_id = producer.create_assessment(request(assessment_type="chatty"))
    wait_for(producer, [assessment_id], lambda a: a.progress >= 1, 30)
    # When it is cancelled while running (it cannot finish on its own first)
    producer.cancel_assessment(assessment_id, "operator changed their mind")
    # Then it stops at its next report, and nothing it does afterwards lands
    [final] = wait_for(producer, [assessment_id], lambda a: a.state in FINISHED, 30)
    assert final.state is AssessmentState.CANCELLED and final.result_data is None
    trail = producer.get_audit_trail(assessment_id)
    assert trail[-1].event == "cancel"
    assert final.progress < 100


def test_an_attempt_past_its_time_limit_fails_saying_so(
    producer: AssessmentStore, start_worker: Callable[..., CeleryProcess]
) -> None:
    start_worker()
    assessment_id = producer.create_assessment(
        request(assessment_type="sleepy", server_name="sleep:8", timeout=1)
    )
    [final] = wait_for(producer, [assessment_id], lambda a: a.state is AssessmentState.FAILED, 30)
    assert final.error_message == "timed out: the attempt exceeded its 1s time limit"


def test_a_failing_attempt_is_retried_by_beat_and_then_completes(
    producer: AssessmentStore,
    start_worker: Callable[..., CeleryProcess],
    start_beat: Callable[..., CeleryProcess],
) -> None:
    start_worker()
    start_beat()
    assessment_id = producer.create_assessment(request(assessment_type="flaky"))
    [final] = wait_for(
        producer, [assessment_id], lambda a: a.state is AssessmentState.COMPLETED, 60
    )
    assert final.retry_count == 1 and final.result_data == {"attempt": 2}
    events = [e.event for e in producer.get_audit_trail(assessment_id)]
    assert events == ["create", "start", "fail", "retry", "start", "complete"]


def wait_until_logged(process: CeleryProcess, marker: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while marker not in process.log():
        assert time.monotonic() < deadline, f"{marker!r} never logged:\n{process.log()[-3000:]}"
        time.sleep(0.1)
