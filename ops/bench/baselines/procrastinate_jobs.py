"""procrastinate 3.x with a no-op job: ``procrastinate --app=...app worker``."""

from __future__ import annotations

import os

import procrastinate

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(
        conninfo=os.environ.get("BENCH_DSN", "host=127.0.0.1 user=postgres")
    )
)


@app.task(name="noop")
def noop() -> None:
    """Does nothing: what is left is procrastinate's own cost."""
