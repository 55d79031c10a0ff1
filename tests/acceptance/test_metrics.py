"""Metrics that move as work happens: prefork children's counters via the worker's
main process (multiprocess mode), and the API's scrape-time gauges."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import httpx

from assessment_store import AssessmentState, AssessmentStore
from assessment_store.demo.processes import ChildProcess, free_port
from tests.acceptance.conftest import wait_for
from tests.acceptance.processes import ROOT
from tests.factories import request


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? ([0-9.e+-]+)$"
    for match in re.finditer(pattern, text, re.MULTILINE):
        found = ",".join(sorted((match.group(1) or "").split(","))) if match.group(1) else ""
        if found == wanted:
            return float(match.group(2))
    return 0.0


def test_worker_metrics_count_the_work_of_every_prefork_child(
    producer: AssessmentStore,
    system_env: dict[str, str],
    tmp_path: Path,
    processes: list[ChildProcess],
) -> None:
    port = free_port()
    worker = ChildProcess(
        "metered",
        [
            sys.executable,
            "-m",
            "assessment_store.cli",
            "worker",
            "--concurrency",
            "2",
            "--without-mingle",
            "--without-gossip",
        ],
        {**system_env, "ASSESSMENT_STORE_WORKER_METRICS_PORT": str(port)},
        tmp_path,
        ready_marker=" ready.",
        cwd=ROOT,
    )
    processes.append(worker)
    worker.start()
    worker.wait_ready()
    ids = producer.batch_create_assessments([request(assessment_type="noop") for _ in range(12)])
    wait_for(producer, ids, lambda a: a.state is AssessmentState.COMPLETED, 60)
    deadline = time.monotonic() + 10
    completed = 0.0
    while completed < 12 and time.monotonic() < deadline:
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        completed = sample(
            body, "assessmentstore_transitions_total", from_state="processing", to_state="completed"
        )
        time.sleep(0.2)
    assert completed == 12
    assert (
        sample(
            body,
            "assessmentstore_processing_time_seconds_count",
            assessment_type="noop",
            outcome="completed",
        )
        == 12
    )
    assert "assessment_id" not in body, "no unbounded labels"
