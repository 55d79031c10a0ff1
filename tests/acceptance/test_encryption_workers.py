"""Encryption at rest with real prefork workers: they run encrypted assessments, and
``assessment-store rotate-keys`` (a real subprocess) re-encrypts while they run,
losing nothing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine

from assessment_store import AssessmentState, AssessmentStore
from assessment_store.config import Settings
from tests.acceptance.conftest import environment_for, wait_for
from tests.acceptance.processes import ROOT, CeleryProcess
from tests.chain import audit_chain_problems
from tests.encrypted import K1, K2, OPTION_SECRET, key_ids_in_use, raw_values, with_keys
from tests.factories import request

OLD = f"k1:{K1}"
ROTATED = f"k2:{K2},k1:{K1}"
ENDED = {AssessmentState.COMPLETED, AssessmentState.FAILED}


def rotate(settings: Settings, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``assessment-store rotate-keys`` in a process of its own; keys only in its
    environment."""
    return subprocess.run(
        [sys.executable, "-m", "assessment_store.cli", "rotate-keys", "--batch-size", "2"],
        env=environment_for(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_workers_run_encrypted_assessments_while_keys_rotate(
    system_settings: Settings,
    start_worker: Callable[..., CeleryProcess],
    raw_engine: Engine,
    raw_conn: Connection,
    tmp_path: Path,
) -> None:
    old_settings = with_keys(system_settings, OLD)
    rotated_settings = with_keys(system_settings, ROTATED)
    # The rollout: every process already holds the new key first (and the old one)
    # when the rotation starts; the producer that wrote the first rows did not.
    process = start_worker("w1", env=environment_for(rotated_settings), concurrency=2)
    options = {"server_filter": [OPTION_SECRET]}
    with AssessmentStore(old_settings) as producer:
        ids = producer.batch_create_assessments(
            [request(assessment_type="sleepy", server_name="sleep:1", options=options)] * 12
            + [request(assessment_type="always_fails", options=options)] * 2
        )
    with AssessmentStore(rotated_settings) as reader:
        wait_for(reader, ids[:1], lambda a: a.state is not AssessmentState.PENDING, 60)
        first = rotate(rotated_settings, tmp_path)
        states = wait_for(reader, ids, lambda a: a.state in ENDED, 120)
        assert [s.state for s in states] == [AssessmentState.COMPLETED] * 12 + [
            AssessmentState.FAILED
        ] * 2, [s.state for s in states]
        assert all(s.result_data == {"slept": 1.0, "attempt": 1} for s in states[:12])
        assert all(s.error_message == "RuntimeError: attempt 1 failed" for s in states[12:])
        assert all(s.request_data.options.server_filter == [OPTION_SECRET] for s in states)
    assert first.returncode in (0, 1), first.stderr  # 1: some rows stayed busy
    assert "re-encrypted" in first.stdout and "Traceback" not in first.stderr
    second = rotate(rotated_settings, tmp_path)
    assert second.returncode == 0, second.stderr
    for output in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert K1 not in output and K2 not in output
    assert key_ids_in_use(raw_engine) == {"k2"}
    raw = raw_values(raw_engine)
    for plaintext in (OPTION_SECRET, "slept", "attempt 1 failed"):
        assert plaintext not in raw
    assert audit_chain_problems(raw_conn) == []
    log = process.log()
    assert "Traceback" not in log and "DECRYPTION_FAILED" not in log and K1 not in log
