"""Cancel, complete, fail and manual retry racing on the same assessments from
several processes at once, while workers run them too."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ops.chaos.racers import run_racers, unaccounted_writes
from ops.chaos.workload import mixed_requests
from tests.faults.conftest import MakeSystem

pytestmark = pytest.mark.slow


def test_racing_changes_from_several_processes_each_take_effect_once(
    make_system: MakeSystem, tmp_path: Path
) -> None:
    # Given two workers and beat running 100 assessments
    system = make_system()
    system.start_workers("w1", "w2", concurrency=2)
    system.start_beat()
    ids = system.producer.batch_create_assessments(
        mixed_requests(random.Random(17), 100, min_seconds=0.5, max_seconds=1.0)
    )
    # When four processes race cancels, completions, failures, claims and manual
    # retries on them, each change made against the version it read
    reports = run_racers(system.settings, ids, tmp_path, racers=4, operations=200, seed=17)
    # Then losing a race is a refusal, never anything else, and races were lost and won
    assert [f for r in reports for f in r.failures] == []
    assert sum(len(r.successes) for r in reports) > 100
    assert sum(r.refusals["VersionConflictError"] for r in reports) > 0
    assert sum(r.refusals["InvalidStateTransitionError"] for r in reports) > 100
    # And once the workers and beat have finished what is left, every success wrote
    # exactly one audit row in its racer's name and nothing else was written in it
    system.wait_settled(timeout=120)
    findings = system.check()
    assert findings.problems() == [], system.logs()
    with system.connect() as conn:
        assert unaccounted_writes(conn, reports) == []
