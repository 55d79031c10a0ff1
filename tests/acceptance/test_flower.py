"""Flower, started by ``assessment-store flower``, sees the real worker and its tasks."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from assessment_store import AssessmentState, AssessmentStore
from assessment_store.demo.processes import ChildProcess, free_port
from assessment_store.queues import queue_list
from tests.acceptance.conftest import wait_for
from tests.acceptance.processes import ROOT, CeleryProcess
from tests.factories import request
from tests.waiting import wait_until

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


def workers_of(base: str) -> dict[str, Any]:
    """Flower's view of the workers, refreshed from the workers themselves."""
    answer: dict[str, Any] = httpx.get(
        f"{base}/api/workers", params={"refresh": "true"}, auth=AUTH, timeout=20
    ).json()
    return answer


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
    seen: dict[str, Any] = {}

    def shows_worker_and_tasks() -> bool:
        seen["workers"] = workers_of(base)
        tasks = httpx.get(f"{base}/api/tasks", auth=AUTH, timeout=10).json()
        seen["ours"] = [
            t for t in tasks.values() if t.get("name") == "assessment_store.run_assessment"
        ]
        return any(name.startswith("watched@") for name in seen["workers"]) and (
            len(seen["ours"]) >= 5
        )

    wait_until(
        shows_worker_and_tasks,
        timeout=30,
        message=lambda: f"{list(seen['workers'])}, {len(seen['ours'])} tasks",
    )
    ours = seen["ours"]
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
    ours: dict[str, Any] = {}

    def lists_worker_with_queues() -> bool:
        ours.clear()
        ours.update(
            (name, info) for name, info in workers_of(base).items() if name.startswith("quiet@")
        )
        return bool(ours) and all(info.get("active_queues") for info in ours.values())

    wait_until(lists_worker_with_queues, timeout=30, message=lambda: f"listed: {list(ours)}")
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
