"""Dedicated pools per band, started with ``assessment-store worker``."""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import Connection, text

from assessment_store import AssessmentState, AssessmentStore
from assessment_store.demo.processes import ChildProcess
from tests.acceptance.conftest import wait_for
from tests.acceptance.processes import ROOT
from tests.factories import request


def cli_worker(name: str, queues: str, env: dict[str, str], log_dir: Path) -> ChildProcess:
    return ChildProcess(
        name,
        [
            sys.executable,
            "-m",
            "assessment_store.cli",
            "worker",
            "--queues",
            queues,
            "--concurrency",
            "1",
            "--hostname",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
        ],
        env,
        log_dir,
        ready_marker=" ready.",
        cwd=ROOT,
    )


def test_each_band_is_served_by_its_own_pool(
    producer: AssessmentStore,
    system_env: dict[str, str],
    tmp_path: Path,
    processes: list[ChildProcess],
    raw_conn: Connection,
) -> None:
    pools = {
        "high-pool": "assessments.high",
        "low-pool": "assessments.low,assessments.normal",
    }
    for name, queues in pools.items():
        worker = cli_worker(name, queues, system_env, tmp_path)
        processes.append(worker)
        worker.start()
    for worker in processes:
        worker.wait_ready()
    ids = producer.batch_create_assessments(
        [request(assessment_type="noop", priority=p) for p in (10, 9, 8, 5, 2, 1)]
    )
    wait_for(producer, ids, lambda a: a.state is AssessmentState.COMPLETED, 60)
    rows = raw_conn.execute(
        text("SELECT priority, worker_id FROM assessment_states ORDER BY priority DESC")
    ).all()
    assert [(p, w.split("@")[0]) for p, w in rows] == [
        (10, "high-pool"),
        (9, "high-pool"),
        (8, "high-pool"),
        (5, "low-pool"),
        (2, "low-pool"),
        (1, "low-pool"),
    ]
