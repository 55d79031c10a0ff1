"""Real ``celery worker`` and ``celery beat`` processes for acceptance tests.

pytest-celery's Docker-based setup cannot run here (no container engine), so tests
start Celery as subprocesses (see assessment_store.demo.processes), each in a new
session so that a SIGKILL takes down a worker's main process and children together.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from assessment_store.demo.processes import (
    ChildProcess,
    api_server,
    celery_beat,
    celery_worker,
    free_port,
)

ROOT = Path(__file__).resolve().parents[2]
CeleryProcess = ChildProcess


def worker(
    name: str, env: dict[str, str], log_dir: Path, *, queues: str, concurrency: int = 2
) -> ChildProcess:
    return celery_worker(name, env, log_dir, queues=queues, concurrency=concurrency, cwd=ROOT)


def beat(name: str, env: dict[str, str], log_dir: Path) -> ChildProcess:
    return celery_beat(name, env, log_dir, cwd=ROOT)


@contextmanager
def running_api(env: dict[str, str], log_dir: Path, jwt_secret: str) -> Iterator[str]:
    """A real uvicorn API process on a free port; its base URL. Its log must hold no
    traceback when it stops."""
    port = free_port()
    process = api_server(
        "api", {**env, "ASSESSMENT_STORE_JWT_SECRET": jwt_secret}, log_dir, port, cwd=ROOT
    )
    process.start()
    process.wait_ready()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()
    assert "Traceback" not in process.log(), process.log()[-3000:]
