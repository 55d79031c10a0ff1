"""Flower, however it is started with the project's app, serves its UI and API only
behind the credentials, which never appear on a command line or in a log; and it sees
the real worker and its tasks."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from assessment_store import AssessmentState, AssessmentStore
from assessment_store.demo.processes import CELERY, ChildProcess, free_port
from assessment_store.queues import queue_list
from tests.acceptance.conftest import wait_for
from tests.acceptance.processes import ROOT, CeleryProcess
from tests.acceptance.sockets import command_lines, listening_addresses
from tests.factories import request
from tests.waiting import wait_until

PASSWORD = "flower-test-password"
AUTH = ("ops", PASSWORD)
CREDENTIALS = {"ASSESSMENT_STORE_FLOWER_BASIC_AUTH": ":".join(AUTH)}
CLI_FLOWER = [sys.executable, "-m", "assessment_store.cli", "flower"]
# Flower's UI and its API; /metrics and /healthcheck are open by Flower's design.
GUARDED_PATHS = ("/", "/tasks", "/api/workers", "/api/tasks")
OPEN_PATHS = ("/metrics", "/healthcheck")


@dataclass(frozen=True)
class RunningFlower:
    url: str
    port: int
    process: ChildProcess

    @property
    def pid(self) -> int:
        assert self.process.process is not None
        return self.process.process.pid


@pytest.fixture
def start_flower(
    tmp_path: Path, processes: list[ChildProcess]
) -> Callable[[list[str], dict[str, str]], RunningFlower]:
    """Start Flower with ``command`` (its port appended) and ``env``, once it listens."""

    def start(command: list[str], env: dict[str, str]) -> RunningFlower:
        port = free_port()
        process = ChildProcess(
            f"flower-{port}",
            [*command, f"--port={port}"],
            env,
            tmp_path,
            ready_marker="Visit me at",
            cwd=ROOT,
        )
        processes.append(process)
        process.start()
        process.wait_ready()
        return RunningFlower(f"http://127.0.0.1:{port}", port, process)

    return start


@pytest.fixture
def flower(
    system_env: dict[str, str], start_flower: Callable[[list[str], dict[str, str]], RunningFlower]
) -> RunningFlower:
    """Flower started by ``assessment-store flower`` with its credentials."""
    return start_flower(CLI_FLOWER, {**system_env, **CREDENTIALS})


def status(url: str, auth: tuple[str, str] | None = None) -> int:
    return httpx.get(url, auth=auth, timeout=20).status_code


def assert_guarded(running: RunningFlower) -> None:
    """UI and API: 401 without or with wrong credentials, 200 with them."""
    for path in GUARDED_PATHS:
        url = f"{running.url}{path}"
        assert status(url) == 401, path
        assert status(url, ("ops", "not-the-password")) == 401, path
        assert status(url, AUTH) == 200, path
    for path in OPEN_PATHS:
        assert status(f"{running.url}{path}") == 200, path


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
    flower: RunningFlower,
) -> None:
    base = flower.url
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


def test_flower_shows_a_failed_attempt_as_a_failed_task_with_the_recorded_error(
    producer: AssessmentStore,
    system_env: dict[str, str],
    broker_url: str,
    start_worker: Callable[..., CeleryProcess],
    flower: RunningFlower,
) -> None:
    # Given a worker with task events on (no beat: the retry the policy schedules waits)
    worker = start_worker("failing", env={**system_env, "ASSESSMENT_STORE_TASK_EVENTS": "true"})
    # When an attempt fails, with retries left
    assessment_id = producer.create_assessment(request(assessment_type="always_fails"))
    [failed] = wait_for(producer, [assessment_id], lambda a: a.state is AssessmentState.FAILED, 60)
    assert failed.error_message == "RuntimeError: attempt 1 failed"
    assert failed.next_retry_at is not None, "the store's policy schedules the retry"
    # Then Flower shows its task as FAILURE with the error PostgreSQL recorded
    seen: dict[str, Any] = {}

    def shows_failure() -> bool:
        tasks = httpx.get(f"{flower.url}/api/tasks", auth=AUTH, timeout=10).json()
        seen["ours"] = [t for t in tasks.values() if assessment_id in str(t.get("args"))]
        return any(t.get("state") == "FAILURE" for t in seen["ours"])

    wait_until(shows_failure, timeout=30, message=lambda: f"Flower shows {seen.get('ours')}")
    [task] = seen["ours"]
    assert "AttemptFailedError" in task["exception"]
    assert failed.error_message in task["exception"]
    assert task["retries"] == 0, "Celery never retried it: the store decides"
    # And its message was acked, not left to be delivered again
    client = redis.Redis.from_url(broker_url)
    assert client.hlen("unacked") == 0
    assert all(client.llen(queue) == 0 for queue in queue_list().split(","))
    # And the worker said so in one line, with no traceback
    log = worker.log()
    assert log.count(f"attempt_failed: {assessment_id}: RuntimeError: attempt 1 failed") == 1
    assert "Traceback" not in log and "raised unexpected" not in log


def test_flower_lists_the_worker_its_pool_and_queues_with_task_events_off(
    producer: AssessmentStore,
    system_env: dict[str, str],
    start_worker: Callable[..., CeleryProcess],
    flower: RunningFlower,
) -> None:
    # Given Flower and a worker with the default settings (no task events)
    base = flower.url
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


def test_assessment_store_flower_keeps_its_credentials_off_command_lines_and_logs(
    flower: RunningFlower,
) -> None:
    # Given Flower started by the CLI with credentials in its environment
    # Then no process of its tree shows the password to ps (/proc/<pid>/cmdline)
    lines = command_lines(flower.pid)
    assert any("flower" in line for line in lines), lines
    assert not [line for line in lines if PASSWORD in line]
    # And its UI and API answer only with the credentials
    assert_guarded(flower)
    # And it listens on the loopback address only (the CLI's default --host)
    assert listening_addresses(flower.pid) == {("127.0.0.1", flower.port)}
    # And nothing it logged, even about refused requests, carries the password
    assert PASSWORD not in flower.process.log()


def test_plain_celery_flower_with_the_app_serves_only_behind_the_credentials(
    system_env: dict[str, str],
    start_flower: Callable[[list[str], dict[str, str]], RunningFlower],
) -> None:
    # Given Flower started as Celery documents it, with the project's credentials set
    running = start_flower([*CELERY, "flower"], {**system_env, **CREDENTIALS})
    # Then its UI and API are behind them (Flower alone would serve its UI to anyone)
    assert_guarded(running)
    # And it listens on loopback (Flower alone would listen on every interface)
    assert listening_addresses(running.pid) == {("127.0.0.1", running.port)}
    assert not [line for line in command_lines(running.pid) if PASSWORD in line]
    assert PASSWORD not in running.process.log()


def refused(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def assert_one_line_refusal(finished: subprocess.CompletedProcess[str], *words: str) -> None:
    assert finished.returncode == 1, finished.stderr
    assert "Traceback" not in finished.stderr
    [line] = [line for line in finished.stderr.splitlines() if line.startswith("Error:")]
    assert all(word in line for word in words), line
    assert "Visit me at" not in finished.stdout + finished.stderr, "it never listened"


def test_plain_celery_flower_refuses_to_start_without_credentials(
    system_env: dict[str, str],
) -> None:
    finished = refused([*CELERY, "flower", f"--port={free_port()}"], system_env)
    assert_one_line_refusal(
        finished, "ASSESSMENT_STORE_FLOWER_BASIC_AUTH", "ASSESSMENT_STORE_FLOWER_UNAUTHENTICATED"
    )


def test_plain_celery_flower_refuses_credentials_given_on_its_command_line(
    system_env: dict[str, str],
) -> None:
    command = [*CELERY, "flower", f"--port={free_port()}", "--basic-auth=ops:on-the-command-line"]
    finished = refused(command, {**system_env, **CREDENTIALS})
    assert_one_line_refusal(finished, "command line", "ASSESSMENT_STORE_FLOWER_BASIC_AUTH")
    assert "on-the-command-line" not in finished.stderr


def test_flower_without_credentials_is_an_explicit_opt_out_on_loopback_only(
    system_env: dict[str, str],
    start_flower: Callable[[list[str], dict[str, str]], RunningFlower],
) -> None:
    opted_out = {**system_env, "ASSESSMENT_STORE_FLOWER_UNAUTHENTICATED": "true"}
    # Given the opt-out, Flower serves UI and API without credentials, on loopback
    running = start_flower([*CELERY, "flower"], opted_out)
    assert status(f"{running.url}/") == 200
    assert status(f"{running.url}/api/workers") == 200
    assert listening_addresses(running.pid) == {("127.0.0.1", running.port)}
    # But never on another address
    anywhere = [*CELERY, "flower", f"--port={free_port()}", "--address=0.0.0.0"]
    assert_one_line_refusal(refused(anywhere, opted_out), "loopback", "0.0.0.0")


def test_assessment_store_flower_refuses_to_start_without_credentials_unless_asked(
    system_env: dict[str, str],
) -> None:
    finished = refused([*CLI_FLOWER, "--port", str(free_port())], system_env)
    assert finished.returncode == 3
    assert "ASSESSMENT_STORE_FLOWER_BASIC_AUTH" in finished.stderr
