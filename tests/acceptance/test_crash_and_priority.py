"""Crashes and priorities with real processes: SIGKILL mid-batch, high overtakes low."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text

from assessment_store import AssessmentState, AssessmentStore
from tests.acceptance.conftest import wait_for
from tests.acceptance.plugins import HOLD_ENV
from tests.acceptance.processes import CeleryProcess
from tests.chain import audit_chain_problems, count_in_state
from tests.factories import request
from tests.waiting import wait_until


def test_a_worker_killed_mid_batch_loses_nothing_and_doubles_nothing(
    producer: AssessmentStore,
    system_env: dict[str, str],
    start_worker: Callable[..., CeleryProcess],
    start_beat: Callable[..., CeleryProcess],
    raw_conn: Connection,
) -> None:
    # Given 100 assessments and a worker part-way through them: it has completed the
    # first 20, and each of its 4 children holds one of 4 it can never finish (so
    # they are provably in flight when it dies); 76 more wait in the queue
    requests = [request(assessment_type="sleepy", server_name="sleep:0.1") for _ in range(100)]
    for index in range(20, 24):
        requests[index] = request(assessment_type="held")
    ids = producer.batch_create_assessments(requests)
    doomed = start_worker("doomed", concurrency=4, env={**system_env, HOLD_ENV: "1"})
    wait_until(
        lambda: _held(raw_conn) == 4,
        timeout=60,
        message="the first worker never reached the held ones",
    )
    # When it is SIGKILLed (main process and children) with those attempts in flight
    assert count_in_state(raw_conn, "completed") >= 1
    doomed.kill()
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
    assert rescued == 4, "the 4 killed attempts came back through rescue"
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
    # When a high-priority one is created last and one worker (one child, so it takes
    # one message at a time) serves all bands
    high = producer.create_assessment(request(assessment_type="noop", priority=9))
    start_worker(concurrency=1)
    wait_for(producer, [*low, high], lambda a: a.state is AssessmentState.COMPLETED, 120)
    # Then it is the first one the worker runs: it polls the high queue first
    order = list(
        raw_conn.execute(
            text(
                "SELECT assessment_id FROM assessment_state_audit WHERE event = 'start' "
                "ORDER BY created_at, id"
            )
        ).scalars()
    )
    rank = order.index(high) + 1
    assert rank == 1, f"high-priority assessment started {rank}th of {len(order)}"


def _held(conn: Connection) -> int:
    """Assessments a worker is holding (the ``held`` handler at 50%)."""
    count = conn.execute(
        text(
            "SELECT count(*) FROM assessment_states WHERE state = 'processing' AND message = 'held'"
        )
    ).scalar_one()
    conn.rollback()
    return int(count)
