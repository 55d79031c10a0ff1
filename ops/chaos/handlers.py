"""The handler faults run against: it records every execution in a side table, so
the checker can prove nothing was done twice, then works for a while, reporting
progress (so time limits and cancellations land mid-write), and may fail on purpose.

Workers load it with ``ASSESSMENT_STORE_HANDLERS=chaos=ops.chaos.handlers:work``. The
request's ``serverName`` carries what to do (see :class:`WorkSpec`), so a producer
needs no other channel to the handler.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions
from sqlalchemy import create_engine, pool, text

from assessment_store.handlers.context import HandlerContext
from assessment_store.notify import libpq_dsn

HANDLER_TYPE = "chaos"
HANDLER_SETTING = f"{HANDLER_TYPE}=ops.chaos.handlers:work"
PROGRESS_EVERY_SECONDS = 0.1
MAX_PROGRESS_STEPS = 20

# One row per execution of the handler, written before it does anything else. It is
# not part of the store: the checker reads it to count executions per attempt.
EXECUTIONS_DDL = """
CREATE TABLE IF NOT EXISTS chaos_executions (
    id bigserial PRIMARY KEY,
    assessment_id text NOT NULL,
    attempt integer NOT NULL,
    pid integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS chaos_executions_assessment ON chaos_executions (assessment_id)
"""


@dataclass(frozen=True)
class WorkSpec:
    """``chaos:<min>-<max>[:fail<N>]``: work between min and max seconds (each attempt
    draws its own duration, the same one on every run of the same id), and fail the
    first N attempts."""

    min_seconds: float
    max_seconds: float
    fail_attempts: int = 0

    def server_name(self) -> str:
        failing = f":fail{self.fail_attempts}" if self.fail_attempts else ""
        return f"{HANDLER_TYPE}:{self.min_seconds:g}-{self.max_seconds:g}{failing}"

    @classmethod
    def parse(cls, server_name: str | None) -> WorkSpec:
        _, _, rest = (server_name or f"{HANDLER_TYPE}:0-0").partition(":")
        seconds, _, failing = rest.partition(":")
        low, _, high = seconds.partition("-")
        return cls(float(low or 0), float(high or low or 0), int(failing.removeprefix("fail") or 0))

    def seconds_for(self, assessment_id: str, attempt: int) -> float:
        digest = hashlib.sha256(f"{assessment_id}:{attempt}".encode()).digest()
        fraction = int.from_bytes(digest[:8], "big") / 2**64
        return self.min_seconds + fraction * (self.max_seconds - self.min_seconds)


def install_executions_table(database_url: str) -> None:
    """Create the side table in a migrated database (idempotent)."""
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            for statement in EXECUTIONS_DDL.split(";"):
                conn.execute(text(statement))
    finally:
        engine.dispose()


class _Recorder:
    """One autocommit connection per process (made again after a fork, and after the
    server dropped it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: psycopg2.extensions.connection | None = None
        self._pid = -1

    def _connect(self, database_url: str) -> psycopg2.extensions.connection:
        if self._connection is None or self._pid != os.getpid() or self._connection.closed:
            connection = psycopg2.connect(
                libpq_dsn(database_url), application_name="chaos-handler", connect_timeout=5
            )
            connection.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
            self._connection, self._pid = connection, os.getpid()
        return self._connection

    def record(self, database_url: str, assessment_id: str, attempt: int) -> int:
        with self._lock:
            for tries_left in (1, 0):
                try:
                    with self._connect(database_url).cursor() as cursor:
                        cursor.execute(
                            "INSERT INTO chaos_executions (assessment_id, attempt, pid) "
                            "VALUES (%s, %s, %s) RETURNING id",
                            (assessment_id, attempt, os.getpid()),
                        )
                        row = cursor.fetchone()
                        assert row is not None
                        return int(row[0])
                except (psycopg2.OperationalError, psycopg2.InterfaceError):
                    # The server restarted under a pooled connection: one fresh try, then
                    # the attempt fails (and is retried) like any handler error.
                    self._connection = None
                    if not tries_left:
                        raise
        raise AssertionError("unreachable")  # pragma: no cover


_recorder = _Recorder()


def work(ctx: HandlerContext) -> dict[str, Any]:
    """Record this execution, work for the spec's duration reporting progress, then
    fail if the spec says this attempt fails."""
    spec = WorkSpec.parse(ctx.request.server_name)
    execution = _recorder.record(ctx.settings.database_url, ctx.assessment_id, ctx.attempt)
    seconds = spec.seconds_for(ctx.assessment_id, ctx.attempt)
    steps = max(1, min(MAX_PROGRESS_STEPS, round(seconds / PROGRESS_EVERY_SECONDS)))
    for step in range(1, steps + 1):
        time.sleep(seconds / steps)
        ctx.report_progress(min(99, step * 100 // steps), f"step {step} of {steps}")
    if ctx.attempt <= spec.fail_attempts:
        raise RuntimeError(f"attempt {ctx.attempt} fails on purpose")
    return {"attempt": ctx.attempt, "execution": execution, "seconds": round(seconds, 3)}
