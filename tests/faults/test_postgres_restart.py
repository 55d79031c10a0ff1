"""PostgreSQL restarted (``pg_ctl restart -m fast``) in the middle of a run, while
workers run attempts and the API holds long-polls: everyone recovers on their own."""

from __future__ import annotations

import random

import pytest

from ops.chaos.instances import PrivatePostgres
from ops.chaos.system import API_SECRET
from ops.chaos.waiters import LongPolls, admin_token, api_waiters, ready, wait_once
from ops.chaos.workload import mixed_requests, work_request
from tests.faults.conftest import MakeSystem
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
WAIT_SECONDS = 60.0
WAITERS = 40


def test_a_postgres_restart_mid_run_is_survived_by_workers_api_and_waiters(
    make_system: MakeSystem, private_postgres: PrivatePostgres
) -> None:
    # Given two workers, beat and the API, 150 assessments under way, and a long-poll
    # held open on each of the 40 queued last (still queued when the restart comes)
    system = make_system()
    system.start_workers("w1", "w2", concurrency=3)
    system.start_beat()
    api = system.start_api()
    token = admin_token(API_SECRET)
    rng = random.Random(3)
    ids = system.producer.batch_create_assessments(
        [
            *mixed_requests(rng, 150 - WAITERS, max_seconds=0.3),
            *(work_request(0.1, 0.3, priority=1) for _ in range(WAITERS)),  # queued last
        ]
    )
    watched = ids[-WAITERS:]
    polls = LongPolls(api, token, watched, wait_seconds=WAIT_SECONDS).start()
    wait_until(
        lambda: api_waiters(api) == WAITERS,
        timeout=60,
        message=lambda: f"the API never held every waiter: {system.logs('api')}",
    )
    wait_until(lambda: system.finished() >= 20, timeout=60, message="no progress")
    # When PostgreSQL restarts, dropping every connection (fast: in-flight work rolled
    # back) while attempts run and waiters wait
    assert system.unfinished(watched) == WAITERS
    private_postgres.restart("fast")
    # Then every waiter comes back with its answer or a clean error, none hangs
    outcomes = polls.join(timeout=WAIT_SECONDS + 60)
    assert [o for o in outcomes if not o.clean] == []
    print({(o.status, o.detail) for o in outcomes})
    # And a retried wait succeeds for each that did not get its answer
    for outcome in outcomes:
        if outcome.status != 200:
            retried = wait_once(api, token, outcome.assessment_id, WAIT_SECONDS)
            assert retried.status == 200, retried
    # And the producer creates again, the API is ready again, and every assessment
    # finishes exactly once with its chain whole
    more = system.producer.batch_create_assessments(mixed_requests(rng, 10))
    wait_until(lambda: ready(api), timeout=60, message=lambda: system.logs("api"))
    system.wait_settled(timeout=120)
    findings = system.check()
    assert findings.problems() == [], system.logs()
    assert findings.total == len(ids) + len(more)
    assert all(process.running for process in [*system.workers.values(), *system.beats.values()])
    assert "Traceback" not in system.logs("api")
