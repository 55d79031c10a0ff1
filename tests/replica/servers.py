"""A real streaming pair, started from the local PostgreSQL binaries: a private
primary (wal_level=replica) and a hot standby made from it with ``pg_basebackup -R
-X stream``. PostgreSQL refuses to run as root, so as root the servers run as the
``postgres`` user, in a directory it owns."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, pool, text

from assessment_store.db import replication
from tests import waiting

STARTUP_SECONDS = 20.0
COMMAND_SECONDS = 30.0
# Fast and small: durability is not what these servers are for.
COMMON_OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
    "-c shared_buffers=16MB -c max_connections=60 -c wal_level=replica "
    "-c max_wal_senders=4 -c hot_standby=on -c wal_receiver_status_interval=1"
)


class ServerError(RuntimeError):
    """A server of the pair could not be set up (the message says which, and why)."""


def pg_binary(name: str) -> str:
    """``name`` from PATH, else from the newest /usr/lib/postgresql/*/bin."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if not candidates:
        raise ServerError(
            f"{name} not found (PATH or /usr/lib/postgresql/*/bin): the replica tests need "
            "the PostgreSQL server binaries (Debian: apt-get install postgresql)"
        )
    return str(candidates[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _run(*command: str) -> None:
    done = subprocess.run(
        [*_as_server_user(), *command],
        capture_output=True,
        text=True,
        timeout=COMMAND_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise ServerError(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()}")


@dataclass
class Server:
    name: str
    data: Path
    port: int
    socket_dir: Path

    @property
    def log(self) -> Path:
        return self.data.parent / f"{self.name}.log"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.socket_dir} {COMMON_OPTIONS}"
        try:
            _run(
                pg_binary("pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(int(STARTUP_SECONDS)),
                "-o",
                options,
                "start",
            )
        except ServerError as exc:
            raise ServerError(f"{self.name}: {exc}\n{self.log_tail()}") from None

    def stop(self) -> None:
        """Stop now (immediate: nothing here needs a clean shutdown); no error if down."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(ServerError, subprocess.TimeoutExpired):
                _run(pg_binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


def execute(url: str, sql: str) -> object:
    """One autocommit statement; its first column of its first row, if any."""
    engine = create_engine(
        url,
        poolclass=pool.NullPool,
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 5},
    )
    try:
        with engine.connect() as conn:
            result = conn.execute(text(sql))
            return result.scalar() if result.returns_rows else None
    finally:
        engine.dispose()


def wait_until(what: str, check: Callable[[], bool], seconds: float = STARTUP_SECONDS) -> None:
    """The suite's one condition wait, failing as a server error naming ``what``."""
    try:
        waiting.wait_until(check, timeout=seconds, message=what)
    except AssertionError:
        raise ServerError(f"{what}: not within {seconds:g}s") from None


@dataclass
class StreamingPair:
    """The primary and its hot standby, streaming; ``database`` is migrated."""

    primary: Server
    replica: Server
    database: str

    @property
    def primary_url(self) -> str:
        return self.primary.url(self.database)

    @property
    def replica_url(self) -> str:
        return self.replica.url(self.database)

    def streaming(self) -> bool:
        count = execute(
            self.primary.url("postgres"),
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
        )
        return bool(count)

    def pause_replay(self) -> None:
        execute(self.replica_url, "SELECT pg_wal_replay_pause()")
        wait_until(
            "replay paused",
            lambda: execute(self.replica_url, "SELECT pg_get_wal_replay_pause_state()") == "paused",
        )

    def resume_replay(self) -> None:
        execute(self.replica_url, "SELECT pg_wal_replay_resume()")

    def wait_until_replayed(self) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        primary = create_engine(self.primary_url, poolclass=pool.NullPool)
        try:
            with primary.connect() as conn:
                target = replication.insert_lsn(conn)
        finally:
            primary.dispose()
        replica = create_engine(self.replica_url, poolclass=pool.NullPool)

        def replayed() -> bool:
            with replica.connect() as conn:
                position = replication.replay_lsn(conn)
            return position is not None and position >= target

        try:
            wait_until("the replica catching up", replayed)
        finally:
            replica.dispose()


@contextlib.contextmanager
def streaming_pair(database: str, migrate: Callable[[str], None]) -> Iterator[StreamingPair]:
    """Start the pair in a fresh temporary directory, ``migrate`` the primary's
    ``database`` (made first), and stop both servers and remove the directory when
    done, also when any step fails."""
    base = Path(tempfile.mkdtemp(prefix="assessment-store-replica-"))
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        os.chown(base, account.pw_uid, account.pw_gid)
    primary = Server("primary", base / "primary", free_port(), base)
    replica = Server("replica", base / "replica", free_port(), base)
    try:
        _run(pg_binary("initdb"), "-D", str(primary.data), "-U", "postgres", "--auth=trust", "-N")
        with (primary.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 trust\n")
        primary.start()
        execute(primary.url("postgres"), f'CREATE DATABASE "{database}"')
        migrate(primary.url(database))
        _run(
            pg_binary("pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(replica.data),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-N",
        )
        replica.start()
        pair = StreamingPair(primary, replica, database)
        wait_until("the replica streaming (pg_stat_replication)", pair.streaming)
        yield pair
    finally:
        replica.stop()
        primary.stop()
        shutil.rmtree(base, ignore_errors=True)
