"""Beat with real processes: retries with two beats, FLUSHALL, a worker that never comes
back, and retention; afterwards nothing is lost, nothing is doubled, chains are whole."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from sqlalchemy import Connection, text

from assessment_store import AssessmentState, AssessmentStore
from assessment_store.config import Settings
from tests.acceptance.conftest import wait_for
from tests.acceptance.plugins import HOLD_ENV
from tests.acceptance.processes import CeleryProcess
from tests.chain import audit_chain_problems, count_in_state
from tests.factories import request


def test_two_beats_at_once_retry_each_failed_attempt_exactly_once(
    producer: AssessmentStore,
    start_worker: Callable[..., CeleryProcess],
    start_beat: Callable[..., CeleryProcess],
    raw_conn: Connection,
) -> None:
    # Given two beat processes and a worker, and assessments that fail every attempt
    start_worker(concurrency=2)
    start_beat("beat-a")
    start_beat("beat-b")
    ids = producer.batch_create_assessments(
        [request(assessment_type="always_fails") for _ in range(20)]
    )
    max_retries = producer.settings.max_retries
    # When every retry has been spent
    states = wait_for(producer, ids, lambda a: a.is_finished, 90)
    # Then each has exactly MAX_RETRIES retries, and the audit rows agree
    assert {(s.state, s.retry_count) for s in states} == {(AssessmentState.FAILED, max_retries)}
    per_assessment = raw_conn.execute(
        text(
            "SELECT count(*) FILTER (WHERE event = 'retry') AS retries, "
            "count(*) FILTER (WHERE event = 'fail') AS fails, "
            "count(*) FILTER (WHERE event = 'start') AS starts "
            "FROM assessment_state_audit GROUP BY assessment_id"
        )
    ).all()
    assert {tuple(r) for r in per_assessment} == {(max_retries, max_retries + 1, max_retries + 1)}
    assert producer.get_assessment_stats().dead_letters == 20
    assert audit_chain_problems(raw_conn) == []


def test_flushall_with_assessments_in_flight_loses_none_of_them(
    producer: AssessmentStore,
    system_settings: Settings,
    start_worker: Callable[..., CeleryProcess],
    start_beat: Callable[..., CeleryProcess],
    raw_conn: Connection,
) -> None:
    # Given a backlog being worked through
    start_worker(concurrency=2)
    start_beat()
    ids = producer.batch_create_assessments(
        [request(assessment_type="sleepy", server_name="sleep:0.2") for _ in range(40)]
    )
    deadline = time.monotonic() + 60
    while count_in_state(raw_conn, "completed") < 4:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # When Redis loses everything (queued messages, unacked messages, bindings)
    client = redis.Redis.from_url(system_settings.effective_broker_url)
    client.flushall()
    client.close()
    assert count_in_state(raw_conn, "completed") < 40, "the flush must land while work is queued"
    # Then re-dispatch republishes what was lost and everything completes exactly once
    states = wait_for(producer, ids, lambda a: a.state is AssessmentState.COMPLETED, 90)
    assert {s.state for s in states} == {AssessmentState.COMPLETED}
    completions = raw_conn.execute(
        text("SELECT count(*) FROM assessment_state_audit WHERE new_state = 'completed'")
    ).scalar_one()
    assert completions == 40
    redispatched = raw_conn.execute(
        text("SELECT count(*) FROM assessment_leases WHERE dispatch_count > 0")
    ).scalar_one()
    assert redispatched > 0
    assert audit_chain_problems(raw_conn) == []


def test_an_assessment_on_a_worker_killed_for_good_completes_through_rescue(
    producer: AssessmentStore,
    system_env: dict[str, str],
    start_worker: Callable[..., CeleryProcess],
    start_beat: Callable[..., CeleryProcess],
    raw_conn: Connection,
) -> None:
    # Given a worker that holds an assessment and can never finish it (so it is
    # provably still running when killed), and another worker and beat running
    doomed = start_worker("doomed", concurrency=1, env={**system_env, HOLD_ENV: "1"})
    assessment_id = producer.create_assessment(request(assessment_type="held", priority=9))
    [running] = wait_for(producer, [assessment_id], lambda a: a.message == "held", 30)
    assert running.worker_id is not None and running.worker_id.startswith("doomed@")
    start_worker("survivor")
    start_beat()
    # When the worker running it is SIGKILLed and never restarted
    assert producer.get_state(assessment_id).state is AssessmentState.PROCESSING
    doomed.kill()
    # Then rescue fails the lost attempt, retry re-queues it, and the survivor completes it
    [final] = wait_for(
        producer, [assessment_id], lambda a: a.state is AssessmentState.COMPLETED, 60
    )
    events = [e.event for e in producer.get_audit_trail(assessment_id)]
    assert events[:2] == ["create", "start"]
    assert "fail" in events and "retry" in events and events[-1] == "complete"
    assert final.worker_id is not None and final.worker_id.startswith("survivor@")
    assert audit_chain_problems(raw_conn) == []


def test_beat_applies_retention_to_old_finished_assessments_only(
    producer: AssessmentStore,
    system_env: dict[str, str],
    start_worker: Callable[..., CeleryProcess],
    start_beat: Callable[..., CeleryProcess],
    raw_conn: Connection,
) -> None:
    # Given finished assessments, some of them 40 days old, and one old but unfinished
    start_worker()
    ids = producer.batch_create_assessments([request(assessment_type="noop") for _ in range(6)])
    wait_for(producer, ids, lambda a: a.state is AssessmentState.COMPLETED, 60)
    old, recent = ids[:3], ids[3:]
    unfinished = producer.create_assessment(
        request(assessment_type="sleepy", server_name="sleep:20")
    )
    wait_for(producer, [unfinished], lambda a: a.state is AssessmentState.PROCESSING, 30)
    with raw_conn.begin():
        raw_conn.execute(
            text(
                "UPDATE assessment_states SET created_at = created_at - interval '40 days', "
                "completed_at = completed_at - interval '40 days' "
                "WHERE assessment_id = ANY(:ids)"
            ),
            {"ids": [*old, unfinished]},
        )
    # When beat runs retention (every second here, RETENTION_DAYS=30)
    system_env["ASSESSMENT_STORE_RETENTION_INTERVAL_SECONDS"] = "1"
    system_env["ASSESSMENT_STORE_RETENTION_DAYS"] = "30"
    start_beat()
    deadline = time.monotonic() + 30
    while _count_rows(raw_conn, old) and time.monotonic() < deadline:
        time.sleep(0.2)
    # Then exactly the old finished ones are gone, audit rows with them
    assert _count_rows(raw_conn, old) == 0
    assert _count_rows(raw_conn, [*recent, unfinished]) == 4
    orphans = raw_conn.execute(
        text("SELECT count(*) FROM assessment_state_audit WHERE assessment_id = ANY(:ids)"),
        {"ids": old},
    ).scalar_one()
    raw_conn.rollback()
    assert orphans == 0
    assert producer.get_state(unfinished).state is AssessmentState.PROCESSING
    producer.cancel_assessment(unfinished, "test over")
    assert audit_chain_problems(raw_conn) == []


def _count_rows(conn: Connection, ids: list[str]) -> int:
    value = conn.execute(
        text("SELECT count(*) FROM assessment_states WHERE assessment_id = ANY(:ids)"),
        {"ids": ids},
    ).scalar_one()
    conn.rollback()
    return int(value)
