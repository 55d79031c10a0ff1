"""Real ``celery worker`` and ``celery beat`` processes for acceptance tests.

pytest-celery's Docker-based setup cannot run here (no container engine), so tests
start Celery as subprocesses of their own, in a new session so that a SIGKILL can
take down a worker's main process and its prefork children together.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[2]


class CeleryProcess:
    """One ``celery -A workers ...`` process group, logging to a file."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], log_dir: Path, ready_marker: str
    ) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.ready_marker = ready_marker
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 60.0) -> CeleryProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.ready_marker in self.log():
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()[-4000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready in {ready_timeout}s:\n{self.log()[-4000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and every child, at once."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it does not finish in time."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        # Leftover children (a hung prefork child) must not outlive the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def __enter__(self) -> CeleryProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def worker(
    name: str,
    env: dict[str, str],
    log_dir: Path,
    *,
    queues: str,
    concurrency: int = 2,
    extra: list[str] | None = None,
) -> CeleryProcess:
    """A prefork worker with events on, consuming ``queues`` (comma-separated)."""
    return CeleryProcess(
        name,
        [
            "worker",
            "--loglevel",
            "INFO",
            "--pool",
            "prefork",
            "--concurrency",
            str(concurrency),
            "--queues",
            queues,
            "--hostname",
            f"{name}@%h",
            "--events",
            "--without-gossip",
            "--without-mingle",
            *(extra or []),
        ],
        env,
        log_dir,
        ready_marker=" ready.",
    )


def beat(name: str, env: dict[str, str], log_dir: Path) -> CeleryProcess:
    """A beat process with its schedule file in the test's directory."""
    return CeleryProcess(
        name,
        [
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(log_dir / f"{name}-schedule"),
            "--pidfile",
            "",
        ],
        env,
        log_dir,
        ready_marker="beat: Starting",
    )
