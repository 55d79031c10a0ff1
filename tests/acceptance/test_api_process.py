"""The API as a real uvicorn process: a thousand long-polls on a handful of connections."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Connection, text

from assessment_store import AssessmentStore
from assessment_store.demo.processes import free_port
from assessment_store.http.auth import Role, issue_token
from tests.acceptance.processes import ROOT, running_api
from tests.factories import request

SECRET = "acceptance-secret-0123456789abcdefghijkl"
WAITERS = 1000


@pytest.fixture
def api(system_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with running_api(system_env, tmp_path, SECRET) as url:
        yield url


def test_the_api_refuses_to_start_without_a_real_secret(
    system_env: dict[str, str], tmp_path: Path
) -> None:
    import subprocess

    finished = subprocess.run(
        [sys.executable, "-m", "assessment_store.cli", "api", "--port", str(free_port())],
        cwd=ROOT,
        env={**system_env, "ASSESSMENT_STORE_JWT_SECRET": "changeme"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 3
    assert "ASSESSMENT_STORE_JWT_SECRET" in finished.stderr


def test_a_thousand_waiters_are_woken_when_their_assessments_complete(
    api: str, producer: AssessmentStore, raw_conn: Connection
) -> None:
    ids = producer.batch_create_assessments(
        [request(assessment_type="noop") for _ in range(WAITERS)], created_by="load"
    )
    headers = {
        "Authorization": "Bearer " + issue_token(SECRET, "load", Role.PRODUCER, timedelta(hours=1))
    }

    async def scenario() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=WAITERS + 10, max_keepalive_connections=0)
        async with httpx.AsyncClient(
            base_url=api, headers=headers, timeout=120, limits=limits
        ) as client:
            polls = [
                asyncio.create_task(client.get(f"/v1/assessments/{i}/wait", params={"timeout": 90}))
                for i in ids
            ]
            # Once the API holds every long-poll, count its database connections.
            deadline = time.monotonic() + 60
            while True:
                metrics = (await client.get("/metrics")).text
                if f"assessmentstore_api_waiters {WAITERS}.0" in metrics:
                    break
                assert time.monotonic() < deadline, "the API never held all the waiters"
                await asyncio.sleep(0.2)
            connections = raw_conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name LIKE 'assessment-store-api%'"
                )
            ).scalar_one()
            listeners = raw_conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = 'assessment-store-listen'"
                )
            ).scalar_one()
            raw_conn.rollback()
            assert connections <= 25, f"{connections} connections for {WAITERS} waiters"
            assert listeners == 1
            assert not any(p.done() for p in polls), "nothing is finished yet"
            await asyncio.to_thread(finish_all, producer, ids)
            return await asyncio.gather(*polls)

    responses = asyncio.run(scenario())
    assert [r.status_code for r in responses] == [200] * WAITERS
    assert {r.json()["state"] for r in responses} == {"completed"}
    assert sorted(r.json()["assessmentId"] for r in responses) == sorted(ids)


def finish_all(store: AssessmentStore, ids: list[str]) -> None:
    for assessment_id in ids:
        store.start_processing(assessment_id, "load-worker")
        store.complete_assessment(assessment_id, {"done": True})
