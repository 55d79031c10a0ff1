"""Child processes started and stopped by the demo, the benchmarks and the tests.

Each runs in a process group of its own, so stopping or killing it reaches every
prefork child too, and logs to ``log_dir/<name>.log``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from assessment_store.config import ENV_PREFIX, Settings

CELERY = [sys.executable, "-m", "celery", "-A", "workers"]
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def child_environment(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with ``settings`` spelled out as ASSESSMENT_STORE_*
    variables (replacing any inherited ones), so a child loads exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    env.update(extra or {})
    return env


class ChildProcess:
    """A command in its own process group, ready once its log shows ``ready_marker``."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str],
        log_dir: Path,
        ready_marker: str,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.cwd = cwd
        self.log_path = log_dir / f"{name}.log"
        self.ready_marker = ready_marker
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.ready_marker not in self.log():
            if not self.running:
                raise RuntimeError(f"{self.name} exited early; its log:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} not ready after {timeout:g}s ({self.log_path})")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the whole group at once: the main process and every child."""
        if self.process is not None and self.running:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (Celery's warm shutdown), then SIGKILL after ``timeout``."""
        if self.process is None or not self.running:
            return
        self.terminate()
        self.wait_stopped(timeout)

    def terminate(self) -> None:
        """SIGTERM to the whole group, without waiting."""
        if self.process is not None and self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def wait_stopped(self, timeout: float) -> None:
        """Wait for the process to end after :meth:`terminate`; SIGKILL after
        ``timeout``."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        # A prefork child that outlived its parent must not outlive us.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def __enter__(self) -> ChildProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def stop_all(processes: Sequence[ChildProcess], timeout: float = 20.0) -> None:
    """Stop several processes at once: SIGTERM to all, then wait for each (their warm
    shutdowns overlap instead of adding up), SIGKILL to any still running after
    ``timeout``."""
    running = [p for p in processes if p.running]
    for child in running:
        child.terminate()
    for child in running:
        child.wait_stopped(timeout)


def celery_worker(
    name: str,
    env: dict[str, str],
    log_dir: Path,
    *,
    queues: str,
    concurrency: int = 2,
    extra: list[str] | None = None,
    cwd: Path | None = None,
) -> ChildProcess:
    """A prefork worker consuming ``queues`` (comma-separated); task events as the
    environment's TASK_EVENTS says."""
    return ChildProcess(
        name,
        [
            *CELERY,
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
            "--without-gossip",
            "--without-mingle",
            *(extra or []),
        ],
        env,
        log_dir,
        ready_marker=" ready.",
        cwd=cwd,
    )


def celery_beat(
    name: str, env: dict[str, str], log_dir: Path, cwd: Path | None = None
) -> ChildProcess:
    """A beat process with its schedule file in ``log_dir``."""
    return ChildProcess(
        name,
        [*CELERY, "beat", "--loglevel", "INFO", "--schedule", str(log_dir / f"{name}-schedule")],
        env,
        log_dir,
        ready_marker="beat: Starting",
        cwd=cwd,
    )


def free_port(preferred: int = 0) -> int:
    """``preferred`` when nothing listens there, else any free loopback port."""
    for candidate in (preferred, 0) if preferred else (0,):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")  # pragma: no cover


def api_server(
    name: str, env: dict[str, str], log_dir: Path, port: int, cwd: Path | None = None
) -> ChildProcess:
    """``assessment-store api`` on 127.0.0.1:``port``, ready once uvicorn has started."""
    return ChildProcess(
        name,
        [
            sys.executable,
            "-m",
            "assessment_store.cli",
            "api",
            "--port",
            str(port),
            "--no-access-log",
        ],
        env,
        log_dir,
        ready_marker="Application startup complete",
        cwd=cwd,
    )
