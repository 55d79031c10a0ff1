"""Crashes and priorities with real processes: SIGKILL mid-batch, high overtakes low."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, text

from assessment_store import AssessmentState, AssessmentStore
from tests.acceptance.conftest import wait_for
from tests.acceptance.processes import CeleryProcess
from tests.chain import audit_chain_problems, count_in_state
from tests.factories import request


def test_a_worker_killed_mid_batch_loses_nothing_and_doubles_nothing(
    producer: AssessmentStore,
    start_worker: Callable[..., CeleryProcess],
    start_beat: Callable[..., CeleryProcess],
    raw_conn: Connection,
) -> None:
    # Given 100 slow assessments and a worker that is part-way through them
    ids = producer.batch_create_assessments(
        [request(assessment_type="sleepy", server_name="sleep:0.4") for _ in range(100)]
    )
    doomed = start_worker("doomed", concurrency=4)
    deadline = time.monotonic() + 60
    while count_in_state(raw_conn, "completed") < 15:
        assert time.monotonic() < deadline, "the first worker made no progress"
        time.sleep(0.1)
    # When it is SIGKILLed (main process and children) with attempts in flight
    in_flight = count_in_state(raw_conn, "processing")
    doomed.kill()
    assert in_flight > 0, "the kill must land while attempts are running"
    # And another worker and beat carry on
    start_worker("survivor", concurrency=4)
    start_beat()
    # Then every assessment completes, each exactly once, with whole audit chains
    states = wait_for(producer, ids, lambda a: a.state is AssessmentState.COMPLETED, 120)
    assert sorted({s.state for s in states}) == [AssessmentState.COMPLETED]
    once = raw_conn.execute(
        text(
            "SELECT count(*) FILTER (WHERE n = 1), count(*) FROM ("
            " SELECT assessment_id, count(*) FILTER (WHERE new_state = 'completed') AS n"
            " FROM assessment_state_audit GROUP BY assessment_id) AS t"
        )
    ).one()
    assert tuple(once) == (100, 100)
    rescued = raw_conn.execute(
        text(
            "SELECT count(DISTINCT assessment_id) FROM assessment_state_audit "
            "WHERE changed_by = 'maintenance.rescue'"
        )
    ).scalar_one()
    assert rescued >= 1, "the killed attempts came back through rescue"
    assert audit_chain_problems(raw_conn) == []


def test_a_high_priority_assessment_overtakes_a_backlog_of_low_ones(
    producer: AssessmentStore,
    start_worker: Callable[..., CeleryProcess],
    raw_conn: Connection,
) -> None:
    # Given 300 low-priority assessments queued before any worker runs
    low = producer.batch_create_assessments(
        [request(assessment_type="noop", priority=1) for _ in range(300)]
    )
    # When a high-priority one is created last and one worker serves all bands
    high = producer.create_assessment(request(assessment_type="noop", priority=9))
    start_worker(concurrency=2)
    wait_for(producer, [*low, high], lambda a: a.state is AssessmentState.COMPLETED, 120)
    # Then it finishes among the first few
    order = list(
        raw_conn.execute(
            text("SELECT assessment_id FROM assessment_states ORDER BY completed_at, assessment_id")
        ).scalars()
    )
    rank = order.index(high) + 1
    assert rank <= 5, f"high-priority assessment finished {rank}th of {len(order)}"
