"""Time limits striking at random moments: 1 s limits against attempts of 0.4-1.6 s
(each attempt its own duration) that write progress every 0.1 s, so the limit lands
in a sleep, a progress write or the execution record, or not at all."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ops.chaos.limits import time_limit_problems
from ops.chaos.workload import work_request
from tests.faults.conftest import MakeSystem

pytestmark = pytest.mark.slow


def test_time_limits_at_random_moments_end_each_attempt_once_naming_the_limit(
    make_system: MakeSystem,
) -> None:
    # Given three workers and beat, and 30 assessments with a 1 s limit whose attempts
    # take between 0.4 and 1.6 s (two retries each). No worker dies here, so the lease
    # is 5 s, not the fault suite's 2 s: a live attempt's heartbeat that a loaded machine
    # delays by a second is not this test's subject (the kill tests are rescue's).
    system = make_system(max_retries=2, lease_seconds=5)
    system.start_workers("w1", "w2", "w3", concurrency=2)
    system.start_beat()
    ids = system.producer.batch_create_assessments(
        [work_request(0.4, 1.6, timeout=1) for _ in range(30)]
    )
    # When they run
    system.wait_settled(timeout=120)
    # Then nothing is lost or done twice, and each ended completed, or failed with its
    # retries used up, every failure the limit, recorded by the worker running it
    findings = system.check()
    assert findings.problems() == [], system.logs()
    with system.connect() as conn:
        assert time_limit_problems(conn, ids, timeout=1) == [], system.logs()
        outcomes = {
            str(state): int(count)
            for state, count in conn.execute(
                text(
                    "SELECT state::text, count(*) FROM assessment_states "
                    "WHERE assessment_id = ANY(:ids) GROUP BY 1"
                ),
                {"ids": ids},
            )
        }
        limited = conn.execute(
            text(
                "SELECT count(*) FROM assessment_state_audit "
                "WHERE event = 'fail' AND assessment_id = ANY(:ids)"
            ),
            {"ids": ids},
        ).scalar_one()
    # And both outcomes happened: limits struck, and attempts finished in time
    assert limited > 0, "no limit ever struck"
    assert outcomes.get("completed", 0) > 0, outcomes
