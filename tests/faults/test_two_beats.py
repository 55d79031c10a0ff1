"""Two beats at once: retries, rescues and re-dispatches each happen once."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import text

from assessment_store import AssessmentStore
from assessment_store.dispatch import NullDispatcher
from ops.chaos.kills import kill_a_busy_worker
from ops.chaos.workload import work_request
from tests.faults.conftest import MakeSystem

pytestmark = pytest.mark.slow


def test_two_beats_at_once_retry_rescue_and_redispatch_everything_once(
    make_system: MakeSystem,
) -> None:
    # Given two beats and two workers, assessments failing their first 0-3 attempts
    # (three failures with two retries: a dead letter), and some never published
    system = make_system(max_retries=2)
    system.start_workers("w1", "w2", concurrency=3)
    system.start_beat("beat-a")
    system.start_beat("beat-b")
    rng = random.Random(29)
    failing = system.producer.batch_create_assessments(
        [work_request(0.3, 0.5, fail_attempts=rng.randint(0, 3)) for _ in range(50)]
    )
    with AssessmentStore(system.settings, dispatcher=NullDispatcher()) as quiet:
        unpublished = quiet.batch_create_assessments([work_request(0.1) for _ in range(30)])
    # When a worker dies mid-attempt (its attempts are for the rescue job) and comes back
    kill = kill_a_busy_worker(system, rng)
    assert kill.in_flight
    system.restart_worker(kill.worker)
    # Then everything finishes, nothing twice
    system.wait_settled(timeout=120)
    findings = system.check()
    assert findings.problems() == [], system.logs()
    with system.connect() as conn:
        counts = conn.execute(
            text(
                """
                SELECT a.assessment_id, s.state::text AS state,
                       count(*) FILTER (WHERE a.event = 'fail') AS fails,
                       count(*) FILTER (WHERE a.event = 'retry') AS retries,
                       count(*) FILTER (WHERE a.event = 'start') AS starts,
                       count(*) FILTER (WHERE a.changed_by = 'maintenance.rescue') AS rescues
                FROM assessment_state_audit AS a JOIN assessment_states AS s USING (assessment_id)
                GROUP BY a.assessment_id, s.state
                """
            )
        ).all()
    by_id = {row.assessment_id: row for row in counts}
    # And each failure was retried exactly once, while retries remained
    for row in by_id.values():
        ended_failed = 1 if row.state == "failed" else 0
        assert row.retries == row.fails - ended_failed == row.starts - 1, row
        assert row.retries <= 2, row
    # And each killed attempt was rescued once, each unpublished one re-dispatched
    assert {aid for aid, row in by_id.items() if row.rescues} == set(kill.in_flight)
    assert all(by_id[aid].rescues == 1 for aid in kill.in_flight)
    assert system.redispatched(unpublished) == set(unpublished)
    dead = {aid for aid in failing if by_id[aid].state == "failed"}
    assert dead and len(dead) < len(failing)
