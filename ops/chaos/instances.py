"""Private PostgreSQL and Redis servers on free loopback ports, for faults to stop,
restart and flush without touching anybody else's services.

PostgreSQL refuses to run as root, so as root the cluster belongs to (and its
commands run as) the ``postgres`` user, as ops/lib.sh start_private_postgres does.
Redis keeps nothing on disk (``--save '' --appendonly no``): a restart comes back empty.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import redis

from assessment_store.demo.processes import free_port
from ops.chaos.polling import until

PG_USER = "postgres"
# Workers, beats, the API, racers and checks together hold well over the default 100.
PG_MAX_CONNECTIONS = 400


def pg_binary(name: str) -> str:
    """``name`` (initdb, pg_ctl) from PATH, else the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    if not candidates:
        raise FileNotFoundError(
            f"PostgreSQL's {name} is neither on PATH nor in /usr/lib/postgresql"
        )
    return candidates[-1]


def _as_cluster_owner() -> list[str]:
    return ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []


class PrivatePostgres:
    """A throwaway cluster: initdb once into a temporary directory, then start, stop and
    restart it (``pg_ctl restart -m fast`` is what a fault calls a restart)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="chaos-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "server.log"
        if os.geteuid() == 0:
            shutil.chown(self.root, PG_USER)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_as_cluster_owner(), pg_binary("pg_ctl"), "-D", str(self.data), *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def _server_options(self) -> list[str]:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            f"-c max_connections={PG_MAX_CONNECTIONS}"
        )
        return ["-l", str(self.log_path), "-o", options]

    def start(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            subprocess.run(
                [
                    *_as_cluster_owner(),
                    pg_binary("initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    PG_USER,
                    "--auth=trust",
                    "--no-sync",  # a throwaway cluster: no need to wait for the disk
                ],
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            )
        self._pg_ctl("-w", "-t", "60", *self._server_options(), "start")

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            self._pg_ctl("-w", "-t", "60", "-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stop (dropping every connection: ``fast`` rolls back what is in flight) and
        start again on the same port."""
        self._pg_ctl("-w", "-t", "60", "-m", mode, *self._server_options(), "restart")

    @property
    def running(self) -> bool:
        return self._pg_ctl("status", check=False).returncode == 0

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class PrivateRedis:
    """A redis-server child on a free port with no persistence."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="chaos-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis.from_url(self.url(db), socket_connect_timeout=2, socket_timeout=5)

    def _answers(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        with (self.root / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.root),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        until(self._answers, timeout=30, message=f"redis-server on {self.port} never answered")

    def stop(self) -> None:
        """SIGTERM and wait: with nothing persisted, everything it held is gone."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)  # a frozen server cannot act on SIGTERM
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)

    def restart(self) -> None:
        """Stop and start again on the same port, empty."""
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: the server keeps its port and accepts connections, but answers
        nothing (a hung Redis, as clients see one), until :meth:`thaw`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
