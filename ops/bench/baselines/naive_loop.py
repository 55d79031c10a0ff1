"""The naive Celery + PostgreSQL loop: what a team writes in an afternoon.

Default Celery worker settings; each task runs two compare-and-set transactions on its
job row (pending -> processing, processing -> completed), each with its audit row. No
leases, no retries, no notifications. ``naive.run`` opens a connection per task, as
such code usually does; ``naive.run_tuned`` keeps one connection per process, the
same loop done with care.
"""

from __future__ import annotations

import os

import psycopg2
import psycopg2.extensions
from celery import Celery

app = Celery("naive", broker=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/10"))
_conn: psycopg2.extensions.connection | None = None

# {jobs} and {audit}: the naive and the tuned loop each have their own tables.
SCHEMA = """
CREATE TABLE IF NOT EXISTS {jobs} (
    id uuid PRIMARY KEY, state text NOT NULL, version integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {audit} (
    id bigserial PRIMARY KEY, job_id uuid NOT NULL, old_state text, new_state text NOT NULL,
    version integer NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""

STEP = (
    "UPDATE {jobs} SET state = %(new)s, version = version + 1, updated_at = now() "
    "WHERE id = %(id)s AND state = %(old)s AND version = %(version)s"
)
AUDIT = (
    "INSERT INTO {audit} (job_id, old_state, new_state, version) "
    "VALUES (%(id)s, %(old)s, %(new)s, %(version)s + 1)"
)

NAIVE = {"jobs": "naive_jobs", "audit": "naive_audit"}
TUNED = {"jobs": "tuned_jobs", "audit": "tuned_audit"}


def _kept_connection() -> psycopg2.extensions.connection:
    global _conn
    if _conn is None or _conn.closed:
        _conn = psycopg2.connect(os.environ["BENCH_DSN"])
    return _conn


def _step(
    conn: psycopg2.extensions.connection, tables: dict[str, str], job_id: str, old: str, new: str
) -> bool:
    version = 1 if old == "pending" else 2
    with conn.cursor() as cur:
        args = {"id": job_id, "old": old, "new": new, "version": version}
        cur.execute(STEP.format(**tables), args)
        if cur.rowcount != 1:
            conn.rollback()
            return False
        cur.execute(AUDIT.format(**tables), args)
    conn.commit()
    return True


@app.task(name="naive.run")  # type: ignore[untyped-decorator]
def run(job_id: str) -> None:
    conn = psycopg2.connect(os.environ["BENCH_DSN"])
    try:
        if _step(conn, NAIVE, job_id, "pending", "processing"):
            _step(conn, NAIVE, job_id, "processing", "completed")
    finally:
        conn.close()


@app.task(name="naive.run_tuned")  # type: ignore[untyped-decorator]
def run_tuned(job_id: str) -> None:
    conn = _kept_connection()
    if _step(conn, TUNED, job_id, "pending", "processing"):
        _step(conn, TUNED, job_id, "processing", "completed")
