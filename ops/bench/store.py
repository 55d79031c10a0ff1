"""Store benchmark: batch create and get_state against raw psycopg2 baselines.

Run: ``ops/bench.sh store``. Everything runs in this one process against one scratch
database, baseline and store alternating round by round, so the ratios hold up on
a noisy two-core machine even where the absolute figures drift.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import psycopg2
import psycopg2.extras
from sqlalchemy import make_url

from assessment_store import AssessmentRequest, AssessmentStore, load_settings
from assessment_store.dispatch import NullDispatcher
from assessment_store.percentiles import percentile
from ops.bench.common import scratch_database

BATCH_ROWS = 10_000
READS = 2_000


def _requests(count: int) -> list[AssessmentRequest]:
    return [
        AssessmentRequest(
            id=f"b-{uuid.uuid4().hex}",
            assessment_type=("health", "security", "compliance")[i % 3],
            server_name=f"host-{i}.example.test:443",
            priority=1 + i % 10,
        )
        for i in range(count)
    ]


def _dsn(url: str) -> str:
    parsed = make_url(url)
    return (
        f"host={parsed.host} port={parsed.port or 5432} dbname={parsed.database} "
        f"user={parsed.username or 'postgres'}"
        + (f" password={parsed.password}" if parsed.password else "")
    )


def raw_execute_values(dsn: str, requests: list[AssessmentRequest], with_audit: bool) -> None:
    """The baseline: psycopg2 execute_values of the same rows (and their audit rows)."""
    rows = [
        (
            r.id,
            json.dumps(r.to_wire()),
            r.priority,
            r.assessment_type,
            r.server_name,
            r.source,
            "bench",
        )
        for r in requests
    ]
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO assessment_states (assessment_id, state, version, request_data, "
            "priority, assessment_type, server_name, source, created_by) VALUES %s",
            rows,
            template="(%s, 'pending', 1, %s::jsonb, %s, %s, %s, %s, %s)",
            page_size=1000,
        )
        if with_audit:
            psycopg2.extras.execute_values(
                cur,
                "INSERT INTO assessment_state_audit (assessment_id, event, new_state, "
                "version_to, changed_by, change_reason) VALUES %s",
                [(r.id,) for r in requests],
                template="(%s, 'create', 'pending', 1, 'bench', 'created')",
                page_size=1000,
            )
    conn.close()


def _timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def bench_batch_create(store: AssessmentStore, dsn: str, rounds: int) -> dict[str, float]:
    store_s, raw_s, raw_audit_s = [], [], []
    for _ in range(rounds):
        # Requests are built outside the timed region for all three.
        plain, audited, batch = (_requests(BATCH_ROWS) for _ in range(3))
        raw_s.append(_timed(partial(raw_execute_values, dsn, plain, False)))
        raw_audit_s.append(_timed(partial(raw_execute_values, dsn, audited, True)))
        store_s.append(_timed(partial(store.batch_create_assessments, batch)))
    store_rate = BATCH_ROWS / statistics.median(store_s)
    raw_rate = BATCH_ROWS / statistics.median(raw_s)
    raw_audit_rate = BATCH_ROWS / statistics.median(raw_audit_s)
    return {
        "store_rows_per_s": round(store_rate),
        "raw_execute_values_rows_per_s": round(raw_rate),
        "raw_execute_values_with_audit_rows_per_s": round(raw_audit_rate),
        "store_vs_raw": round(store_rate / raw_rate, 3),
        "store_vs_raw_with_audit": round(store_rate / raw_audit_rate, 3),
    }


def bench_get_state(store: AssessmentStore, dsn: str) -> dict[str, float]:
    ids = store.batch_create_assessments(_requests(READS))
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    store_ms, raw_ms = [], []
    for assessment_id in ids * 2:  # alternate the two so drift hits both alike
        started = time.perf_counter()
        cur.execute("SELECT * FROM assessment_states WHERE assessment_id = %s", (assessment_id,))
        cur.fetchone()
        raw_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        store.get_state(assessment_id)
        store_ms.append((time.perf_counter() - started) * 1000)
    conn.close()
    result = {}
    for name, samples in (("store", store_ms), ("raw_pk_select", raw_ms)):
        result[f"{name}_p50_ms"] = round(percentile(samples, 50), 3)
        result[f"{name}_p99_ms"] = round(percentile(samples, 99), 3)
    result["p50_ratio"] = round(result["store_p50_ms"] / result["raw_pk_select_p50_ms"], 2)
    result["p99_ratio"] = round(result["store_p99_ms"] / result["raw_pk_select_p99_ms"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="batch-create rounds (median)")
    args = parser.parse_args()
    with scratch_database() as url:
        store = AssessmentStore(load_settings(database_url=url), dispatcher=NullDispatcher())
        try:
            store.batch_create_assessments(_requests(100))  # warm the pool and caches
            report = {
                "batch_create_10k": bench_batch_create(store, _dsn(url), args.rounds),
                "get_state": bench_get_state(store, _dsn(url)),
            }
        finally:
            store.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
