"""Repeated SIGKILLs of busy workers (main process and prefork children at once) while
a few hundred assessments run, each worker restarted after its kill."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import text

from ops.chaos.kills import kill_a_busy_worker
from ops.chaos.system import System
from ops.chaos.workload import mixed_requests
from tests.faults.conftest import MakeSystem
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
KILLS = 4


def test_repeated_kills_of_busy_workers_lose_nothing_and_double_nothing(
    make_system: MakeSystem,
) -> None:
    # Given three workers and beat working through 200 assessments (some failing their
    # first attempts, so retries are in the mix)
    system = make_system()
    system.start_workers("w1", "w2", "w3", concurrency=3)
    system.start_beat()
    rng = random.Random(20261201)
    ids = system.producer.batch_create_assessments(
        # Attempts of 0.5-0.7 s: each is provably busy (more than the kill margin left)
        # for 0.3 s or more, which a loaded machine's poll still sees.
        mixed_requests(rng, 200, min_seconds=0.5, max_seconds=0.7)
    )
    # When a worker that provably runs attempts is SIGKILLed, four times spread over
    # the run, each restarted after its kill
    killed: set[str] = set()
    for round_ in range(1, KILLS + 1):
        wait_for_progress(system, round_ * len(ids) // (KILLS + 2))
        kill = kill_a_busy_worker(system, rng)
        assert kill.in_flight, f"{kill.worker} held nothing when killed"
        killed.update(kill.in_flight)
        system.restart_worker(kill.worker)
    # Then everything finishes, nothing twice, every chain whole, no lease left behind
    system.wait_settled(timeout=120, ids=ids)
    findings = system.check()
    assert findings.problems() == [], system.logs()
    assert findings.total == len(ids)
    # And each killed attempt was ended by the rescue job (its worker could not)
    with system.connect() as conn:
        rescued = set(
            conn.execute(
                text(
                    "SELECT assessment_id FROM assessment_state_audit "
                    "WHERE changed_by = 'maintenance.rescue' AND assessment_id = ANY(:ids)"
                ),
                {"ids": sorted(killed)},
            ).scalars()
        )
    assert rescued == killed


def wait_for_progress(system: System, finished: int) -> None:
    wait_until(
        lambda: system.finished() >= finished,
        timeout=120,
        message=lambda: f"fewer than {finished} finished: {system.logs()}",
    )
