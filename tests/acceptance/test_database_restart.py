"""PostgreSQL dropping every connection (what a restart looks like to clients) while
workers, beat and the producer are busy: nothing is lost or completed twice."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text

from assessment_store import AssessmentState, AssessmentStore
from tests.acceptance.conftest import wait_for
from tests.acceptance.processes import CeleryProcess
from tests.chain import audit_chain_problems, count_in_state
from tests.factories import request
from tests.waiting import wait_until


def drop_every_other_connection(conn: Connection) -> int:
    """Terminate every backend on this database but our own, as a restart would."""
    killed = conn.execute(
        text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    ).scalar_one()
    conn.rollback()
    return int(killed)


def test_connections_dropped_mid_batch_lose_nothing_and_double_nothing(
    producer: AssessmentStore,
    start_worker: Callable[..., CeleryProcess],
    start_beat: Callable[..., CeleryProcess],
    raw_conn: Connection,
) -> None:
    # Given a batch in progress on a worker, with beat running
    start_worker(concurrency=2)
    start_beat()
    ids = producer.batch_create_assessments(
        [request(assessment_type="sleepy", server_name="sleep:0.3") for _ in range(40)]
    )
    wait_until(
        lambda: count_in_state(raw_conn, "completed") >= 5,
        timeout=60,
        message="the worker completed nothing",
    )
    # When every connection to the database is cut, twice, while work is running
    killed = drop_every_other_connection(raw_conn)
    # (the second cut lands once the workers have provably reconnected: more completed)
    recovered_from = count_in_state(raw_conn, "completed")
    wait_until(
        lambda: not recovered_from == count_in_state(raw_conn, "completed") < len(ids),
        timeout=60,
        message="no work completed after the first cut",
    )
    killed += drop_every_other_connection(raw_conn)
    assert killed > 0
    # And the producer keeps creating (its pool must recover on its own)
    more = producer.batch_create_assessments(
        [request(assessment_type="sleepy", server_name="sleep:0.1") for _ in range(5)]
    )
    # Then everything completes, each assessment exactly once, chains whole
    states = wait_for(producer, [*ids, *more], lambda a: a.state is AssessmentState.COMPLETED, 120)
    assert {s.state for s in states} == {AssessmentState.COMPLETED}
    once = raw_conn.execute(
        text(
            "SELECT count(*) FROM (SELECT assessment_id FROM assessment_state_audit "
            "WHERE new_state = 'completed' GROUP BY assessment_id HAVING count(*) = 1) t"
        )
    ).scalar_one()
    assert once == 45
    assert audit_chain_problems(raw_conn) == []
