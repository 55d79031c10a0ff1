"""The main job, as the README's first command runs it (minus the venv and services)."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import Connection, text

from tests.acceptance.processes import ROOT
from tests.chain import audit_chain_problems


def test_the_demo_runs_a_mixed_batch_to_a_clean_finish(
    system_env: dict[str, str], raw_conn: Connection
) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "assessment_store.cli", "demo", "--rounds", "1", "--timeout", "120"],
        cwd=ROOT,
        env={**system_env, "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert "demo finished cleanly" in finished.stdout
    assert "demo summary" in finished.stdout
    rows = raw_conn.execute(
        text("SELECT state::text, count(*) FROM assessment_states GROUP BY state")
    ).all()
    states = {str(state): int(count) for state, count in rows}
    assert states == {"completed": 7, "failed": 1, "cancelled": 1}
    retried = raw_conn.execute(
        text("SELECT count(*) FROM assessment_states WHERE retry_count > 0")
    ).scalar_one()
    assert retried == 1
    assert audit_chain_problems(raw_conn) == []
