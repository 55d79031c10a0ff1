"""A client written only from the seeds' TypeScript interfaces (tests/seed_client, in
JavaScript on Node.js) against a real API process and worker: create, get, list,
cancel, stats, then wait; every field the seeds declare is there with their type."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from assessment_store.demo.targets import http_server
from assessment_store.http.auth import Role, issue_token
from tests.acceptance.processes import ROOT, CeleryProcess, running_api

SECRET = "seed-client-secret-0123456789abcdefghij"
CLIENT = ROOT / "tests" / "seed_client" / "seed_client.mjs"


@pytest.fixture
def seed_api(system_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with running_api(system_env, tmp_path, SECRET) as url:
        yield url


def run_client(env: dict[str, str], *args: str) -> dict[str, object]:
    node = shutil.which("node")
    assert node, "Node.js is needed for the seed client test (apt-get install nodejs)"
    finished = subprocess.run(
        [node, str(CLIENT), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    summary: dict[str, object] = json.loads(finished.stdout.strip().splitlines()[-1])
    return summary


def test_a_client_of_the_seeds_creates_reads_lists_cancels_waits_and_reads_stats(
    seed_api: str, start_worker: Callable[..., CeleryProcess]
) -> None:
    token = issue_token(SECRET, "seed-client", Role.PRODUCER, timedelta(hours=1))
    with http_server() as port:
        env = {"BASE_URL": seed_api, "TOKEN": token, "SERVER_NAME": f"http://127.0.0.1:{port}/"}
        # No worker yet: the cancelled one is provably still pending when cancelled.
        prepared = run_client(env, "prepare")
        assert prepared["failures"] == [] and int(str(prepared["checks"])) > 100
        start_worker()
        waited = run_client(env, "wait", str(prepared["waitFor"]))
    assert waited["failures"] == []
    assert waited["status"] == "completed"
    assert isinstance(waited["result"], dict) and waited["result"]["healthy"] is True
