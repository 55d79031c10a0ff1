"""Real ``celery worker`` and ``celery beat`` processes for acceptance tests.

pytest-celery's Docker-based setup cannot run here (no container engine), so tests
start Celery as subprocesses (see assessment_store.demo.processes), each in a new
session so that a SIGKILL takes down a worker's main process and children together.
"""

from __future__ import annotations

from pathlib import Path

from assessment_store.demo.processes import ChildProcess, celery_beat, celery_worker

ROOT = Path(__file__).resolve().parents[2]
CeleryProcess = ChildProcess


def worker(
    name: str, env: dict[str, str], log_dir: Path, *, queues: str, concurrency: int = 2
) -> ChildProcess:
    return celery_worker(name, env, log_dir, queues=queues, concurrency=concurrency, cwd=ROOT)


def beat(name: str, env: dict[str, str], log_dir: Path) -> ChildProcess:
    return celery_beat(name, env, log_dir, cwd=ROOT)
