"""Time limits striking at random moments: 1 s limits against attempts of 0.4-1.6 s
(each attempt its own duration) that write progress every 0.1 s, so the limit lands
in a sleep, a progress write or the execution record, or not at all."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ops.chaos.workload import work_request
from tests.faults.conftest import MakeSystem

pytestmark = pytest.mark.slow
LIMIT = "timed out: the attempt exceeded its 1s time limit"


def test_time_limits_at_random_moments_end_each_attempt_once_naming_the_limit(
    make_system: MakeSystem,
) -> None:
    # Given three workers and beat, and 30 assessments with a 1 s limit whose attempts
    # take between 0.4 and 1.6 s (two retries each)
    system = make_system(max_retries=2)
    system.start_workers("w1", "w2", "w3", concurrency=2)
    system.start_beat()
    ids = system.producer.batch_create_assessments(
        [work_request(0.4, 1.6, timeout=1) for _ in range(30)]
    )
    # When they run
    system.wait_settled(timeout=120)
    # Then each ends completed, or failed with its retries used up, nothing twice
    findings = system.check()
    assert findings.problems() == [], system.logs()
    with system.connect() as conn:
        ends = conn.execute(
            text(
                "SELECT state::text, retry_count, error_message FROM assessment_states "
                "WHERE assessment_id = ANY(:ids)"
            ),
            {"ids": ids},
        ).all()
        failures = conn.execute(
            text(
                "SELECT changed_by, change_reason FROM assessment_state_audit "
                "WHERE event = 'fail' AND assessment_id = ANY(:ids)"
            ),
            {"ids": ids},
        ).all()
    assert {(state, retries, error) for state, retries, error in ends if state != "completed"} <= {
        ("failed", 2, LIMIT)
    }
    # And every failure was the limit, recorded by the worker running the attempt
    # (never left for the lease to run out), and both outcomes happened
    assert failures, "no limit ever struck"
    assert {reason for _, reason in failures} == {f"failed: {LIMIT}"}
    assert all("@" in who for who, _ in failures), failures
    assert any(state == "completed" for state, _, _ in ends)
