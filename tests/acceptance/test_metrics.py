"""Metrics that move as work happens: prefork children's counters via the worker's
main process (multiprocess mode), and the API's scrape-time gauges."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import httpx
import pytest

from assessment_store import AssessmentState, AssessmentStore
from assessment_store.demo.processes import ChildProcess, free_port
from tests.acceptance.conftest import wait_for
from tests.acceptance.processes import ROOT
from tests.acceptance.sockets import listening_addresses
from tests.factories import request
from tests.waiting import wait_until


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? ([0-9.e+-]+)$"
    for match in re.finditer(pattern, text, re.MULTILINE):
        found = ",".join(sorted((match.group(1) or "").split(","))) if match.group(1) else ""
        if found == wanted:
            return float(match.group(2))
    return 0.0


def metered_worker(
    env: dict[str, str], tmp_path: Path, processes: list[ChildProcess], port: int
) -> ChildProcess:
    """``assessment-store worker`` serving its metrics on ``port``, once ready."""
    worker = ChildProcess(
        f"metered-{port}",
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
        {**env, "ASSESSMENT_STORE_WORKER_METRICS_PORT": str(port)},
        tmp_path,
        ready_marker=" ready.",
        cwd=ROOT,
    )
    processes.append(worker)
    worker.start()
    worker.wait_ready()
    return worker


def metrics_listeners(worker: ChildProcess, port: int) -> set[tuple[str, int]]:
    """Where the worker's process tree listens on the metrics port (it serves them in
    its main process once ready, but wait rather than assume)."""
    assert worker.process is not None
    pid = worker.process.pid
    wait_until(
        lambda: any(p == port for _, p in listening_addresses(pid)),
        timeout=10,
        message=lambda: f"nothing listens on {port}; log:\n{worker.log()[-2000:]}",
    )
    return {address for address in listening_addresses(pid) if address[1] == port}


def test_worker_metrics_count_the_work_of_every_prefork_child(
    producer: AssessmentStore,
    system_env: dict[str, str],
    tmp_path: Path,
    processes: list[ChildProcess],
) -> None:
    port = free_port()
    worker = metered_worker(system_env, tmp_path, processes, port)
    # The endpoint binds the loopback address by default (WORKER_METRICS_HOST)
    assert metrics_listeners(worker, port) == {("127.0.0.1", port)}
    ids = producer.batch_create_assessments([request(assessment_type="noop") for _ in range(12)])
    wait_for(producer, ids, lambda a: a.state is AssessmentState.COMPLETED, 60)
    scraped = {"body": ""}

    def counted_all() -> bool:
        scraped["body"] = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        completed = sample(
            scraped["body"],
            "assessmentstore_transitions_total",
            from_state="processing",
            to_state="completed",
        )
        return completed == 12

    wait_until(counted_all, timeout=10, message=lambda: f"not 12 completed:\n{scraped['body']}")
    body = scraped["body"]
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


def test_worker_metrics_bind_the_configured_host_only(
    system_env: dict[str, str], tmp_path: Path, processes: list[ChildProcess]
) -> None:
    # Given a worker told to serve its metrics on another loopback address
    port = free_port()
    env = {**system_env, "ASSESSMENT_STORE_WORKER_METRICS_HOST": "127.0.0.2"}
    worker = metered_worker(env, tmp_path, processes, port)
    # Then it listens there and nowhere else: the setting, not a hard-coded address
    assert metrics_listeners(worker, port) == {("127.0.0.2", port)}
    assert httpx.get(f"http://127.0.0.2:{port}/metrics", timeout=5).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
