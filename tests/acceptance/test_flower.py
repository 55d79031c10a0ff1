"""Flower, started by ``assessment-store flower``, sees the real worker and its tasks."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from assessment_store import AssessmentState, AssessmentStore
from assessment_store.demo.processes import ChildProcess, free_port
from assessment_store.queues import queue_list
from tests.acceptance.conftest import wait_for
from tests.acceptance.processes import ROOT, CeleryProcess
from tests.factories import request

AUTH = ("ops", "flower-test-password")


@pytest.fixture
def flower(system_env: dict[str, str], tmp_path: Path, processes: list[ChildProcess]) -> str:
    """Flower started by ``assessment-store flower`` with basic auth; its base URL."""
    port = free_port()
    process = ChildProcess(
        "flower",
        [sys.executable, "-m", "assessment_store.cli", "flower", "--port", str(port)],
        {**system_env, "ASSESSMENT_STORE_FLOWER_BASIC_AUTH": ":".join(AUTH)},
        tmp_path,
        ready_marker="Visit me at",
        cwd=ROOT,
    )
    processes.append(process)
    process.start()
    process.wait_ready()
    return f"http://127.0.0.1:{port}"


def test_flower_finds_the_worker_and_its_tasks_over_its_api_and_metrics(
    producer: AssessmentStore,
    system_env: dict[str, str],
    start_worker: Callable[..., CeleryProcess],
    flower: str,
) -> None:
    base = flower
    start_worker("watched", env={**system_env, "ASSESSMENT_STORE_TASK_EVENTS": "true"})
    ids = producer.batch_create_assessments([request(assessment_type="noop") for _ in range(5)])
    wait_for(producer, ids, lambda a: a.state is AssessmentState.COMPLETED, 60)
    assert httpx.get(f"{base}/api/workers", timeout=10).status_code == 401, "auth is on"
    deadline = time.monotonic() + 30
    while True:
        workers = httpx.get(
            f"{base}/api/workers", params={"refresh": "true"}, auth=AUTH, timeout=20
        ).json()
        tasks = httpx.get(f"{base}/api/tasks", auth=AUTH, timeout=10).json()
        ours = [t for t in tasks.values() if t.get("name") == "assessment_store.run_assessment"]
        if any(name.startswith("watched@") for name in workers) and len(ours) >= 5:
            break
        assert time.monotonic() < deadline, (list(workers), len(ours))
        time.sleep(0.5)
    assert {t["state"] for t in ours} == {"SUCCESS"}
    shown_args = " ".join(str(t.get("args")) for t in ours)
    assert all(assessment_id in shown_args for assessment_id in ids)
    metrics = httpx.get(f"{base}/metrics", timeout=10).text
    assert "flower_events_total" in metrics
    assert 'task="assessment_store.run_assessment"' in metrics


def test_flower_lists_the_worker_its_pool_and_queues_with_task_events_off(
    producer: AssessmentStore,
    system_env: dict[str, str],
    start_worker: Callable[..., CeleryProcess],
    flower: str,
) -> None:
    # Given Flower and a worker with the default settings (no task events)
    base = flower
    start_worker("quiet", concurrency=2)
    ids = producer.batch_create_assessments([request(assessment_type="noop") for _ in range(3)])
    wait_for(producer, ids, lambda a: a.state is AssessmentState.COMPLETED, 60)
    # Then Flower still lists it, with its pool and the queues it consumes
    deadline = time.monotonic() + 30
    while True:
        workers = httpx.get(
            f"{base}/api/workers", params={"refresh": "true"}, auth=AUTH, timeout=20
        ).json()
        ours = {name: info for name, info in workers.items() if name.startswith("quiet@")}
        if ours and all(info.get("active_queues") for info in ours.values()):
            break
        assert time.monotonic() < deadline, list(workers)
        time.sleep(0.5)
    [info] = ours.values()
    assert info["stats"]["pool"]["max-concurrency"] == 2
    assert {q["name"] for q in info["active_queues"]} == set(queue_list().split(","))


def test_flower_refuses_to_start_without_auth_unless_asked(system_env: dict[str, str]) -> None:
    import subprocess

    finished = subprocess.run(
        [sys.executable, "-m", "assessment_store.cli", "flower", "--port", str(free_port())],
        cwd=ROOT,
        env=system_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 3
    assert "ASSESSMENT_STORE_FLOWER_BASIC_AUTH" in finished.stderr
