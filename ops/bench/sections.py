"""The benchmark's sections other than end-to-end throughput; each returns its figures
(and the raw samples the plots need) as plain data."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg2
import redis
from sqlalchemy import create_engine, pool, text

from assessment_store import AssessmentRequest, AssessmentStore
from assessment_store.config import Settings
from assessment_store.demo.processes import ChildProcess, api_server, child_environment, free_port
from assessment_store.dispatch import NullDispatcher
from assessment_store.http.auth import Role, issue_token
from assessment_store.percentiles import percentile
from ops.bench.api import http_reads, raw_notify_round_trip, waiter_wake_up
from ops.bench.common import libpq
from ops.bench.store import _requests, raw_execute_values

SECRET = "bench-secret-0123456789abcdefghijklmnop"


def summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(samples_ms, 50), 3),
        "p99_ms": round(percentile(samples_ms, 99), 3),
        "samples": len(samples_ms),
    }


def _timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def creation(settings: Settings, rounds: int, rows: int, singles: int) -> dict[str, Any]:
    """Batch create with its publish against raw execute_values (with and without the
    audit rows), and one create at a time against a raw single-row insert + audit."""
    sink = redis.Redis.from_url(settings.redis_url)
    store = AssessmentStore(settings)  # publishes to a Redis database nobody consumes
    dsn = libpq(settings.database_url)
    try:
        store.batch_create_assessments(_requests(100))  # warm the pool and the producer
        batch: dict[str, list[float]] = {"store": [], "raw": [], "raw_with_audit": []}
        for _ in range(rounds):
            plain, audited, ours = (_requests(rows) for _ in range(3))
            batch["raw"].append(_timed(partial(raw_execute_values, dsn, plain, False)))
            batch["raw_with_audit"].append(_timed(partial(raw_execute_values, dsn, audited, True)))
            batch["store"].append(_timed(partial(store.batch_create_assessments, ours)))
            sink.flushdb()
        rates = {k: rows / sorted(v)[len(v) // 2] for k, v in batch.items()}
        one: dict[str, list[float]] = {"store": [], "raw_with_audit": []}
        conn = psycopg2.connect(dsn)
        for request in _requests(singles):
            fresh = _fresh(request)
            one["raw_with_audit"].append(_timed(partial(_raw_single, conn, request)) * 1000)
            one["store"].append(_timed(partial(store.create_assessment, fresh)) * 1000)
        conn.close()
        sink.flushdb()
    finally:
        store.close()
    return {
        "batch_rows": rows,
        "batch_rows_per_s": {k: round(v) for k, v in rates.items()},
        "batch_store_vs_raw_with_audit": round(rates["store"] / rates["raw_with_audit"], 3),
        "batch_store_vs_raw": round(rates["store"] / rates["raw"], 3),
        "single": {k: summary(v) for k, v in one.items()},
        "single_p50_ratio": round(
            percentile(one["store"], 50) / percentile(one["raw_with_audit"], 50), 3
        ),
    }


def _fresh(request: AssessmentRequest) -> AssessmentRequest:
    return request.model_copy(update={"id": f"s-{uuid.uuid4().hex}"})


def _raw_single(conn: Any, r: AssessmentRequest) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO assessment_states (assessment_id, state, version, request_data, "
            "priority, assessment_type, server_name, source, created_by) "
            "VALUES (%s, 'pending', 1, %s::jsonb, %s, %s, %s, %s, 'bench')",
            (r.id, json.dumps(r.to_wire()), r.priority, r.assessment_type, r.server_name, r.source),
        )
        cur.execute(
            "INSERT INTO assessment_state_audit (assessment_id, event, new_state, version_to, "
            "changed_by, change_reason) VALUES (%s, 'create', 'pending', 1, 'bench', 'created')",
            (r.id,),
        )
    conn.commit()


def python_reads(settings: Settings, reads: int) -> dict[str, Any]:
    """get_state, uncached and cached, against a raw primary-key SELECT, interleaved."""
    plain = AssessmentStore(settings, dispatcher=NullDispatcher())
    cached = AssessmentStore(
        settings.model_copy(update={"cache_enabled": True, "cache_ttl_seconds": 60.0}),
        dispatcher=NullDispatcher(),
    )
    ids = plain.batch_create_assessments(_requests(reads))
    conn = psycopg2.connect(libpq(settings.database_url))
    conn.autocommit = True
    cur = conn.cursor()
    samples: dict[str, list[float]] = {"raw_pk_select": [], "store": [], "store_cached": []}
    try:
        for assessment_id in ids[:50]:
            plain.get_state(assessment_id)
            cached.get_state(assessment_id)
        for assessment_id in ids * 2:
            started = time.perf_counter()
            cur.execute(
                "SELECT * FROM assessment_states WHERE assessment_id = %s", (assessment_id,)
            )
            cur.fetchone()
            samples["raw_pk_select"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            plain.get_state(assessment_id)
            samples["store"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            cached.get_state(assessment_id)
            samples["store_cached"].append((time.perf_counter() - started) * 1000)
    finally:
        conn.close()
        plain.close()
        cached.close()
    raw = percentile(samples["raw_pk_select"], 50)
    return {
        **{k: summary(v) for k, v in samples.items()},
        "store_p50_ratio": round(percentile(samples["store"], 50) / raw, 3),
        "store_cached_p50_ratio": round(percentile(samples["store_cached"], 50) / raw, 3),
        "_samples": samples,
    }


def _api(name: str, settings: Settings, logs: Path, **overrides: Any) -> tuple[ChildProcess, str]:
    port = free_port()
    env = child_environment(settings.model_copy(update={"jwt_secret": SECRET, **overrides}))
    process = api_server(name, env, logs, port)
    process.start()
    process.wait_ready()
    return process, f"http://127.0.0.1:{port}"


def http_reads_section(settings: Settings, logs: Path, reads: int) -> dict[str, Any]:
    """GET /v1/assessments/{id}, uncached and cached, against GET /health."""
    store = AssessmentStore(settings, dispatcher=NullDispatcher())
    done = store.create_assessment(
        AssessmentRequest(assessment_type="health", server_name="127.0.0.1"), created_by="bench"
    )
    store.start_processing(done, "bench")
    store.complete_assessment(done, {"ok": True})
    store.close()
    token = issue_token(SECRET, "bench", Role.PRODUCER, timedelta(hours=1))
    plain, plain_url = _api("api-plain", settings, logs, cache_enabled=False)
    cached, cached_url = _api("api-cached", settings, logs, cache_enabled=True)
    samples: dict[str, list[float]] = {"health": [], "get": [], "get_cached": []}
    try:
        for _ in range(4):  # alternate so drift hits all alike
            samples["health"] += http_reads(plain_url, "/health", token, reads // 4)
            samples["get"] += http_reads(plain_url, f"/v1/assessments/{done}", token, reads // 4)
            samples["get_cached"] += http_reads(
                cached_url, f"/v1/assessments/{done}", token, reads // 4
            )
    finally:
        plain.stop()
        cached.stop()
    health = percentile(samples["health"], 50)
    return {
        **{k: summary(v) for k, v in samples.items()},
        "get_p50_ratio": round(percentile(samples["get"], 50) / health, 3),
        "get_cached_p50_ratio": round(percentile(samples["get_cached"], 50) / health, 3),
        "_samples": samples,
    }


def wake_up(settings: Settings, rounds: int) -> dict[str, Any]:
    """A waiter's wake-up after a completion commits, against a raw LISTEN/NOTIFY."""
    store = AssessmentStore(settings, dispatcher=NullDispatcher())
    raw: list[float] = []
    raw_durable: list[float] = []
    ours: list[float] = []
    after_commit: list[float] = []
    try:
        for _ in range(4):
            raw += raw_notify_round_trip(settings.database_url, rounds // 4)
            raw_durable += raw_notify_round_trip(settings.database_url, rounds // 4, durable=True)
            total, committed = waiter_wake_up(store, rounds // 4)
            ours += total
            after_commit += committed
    finally:
        store.close()
    return {
        "raw_listen_notify": summary(raw),
        "raw_durable_write_listen_notify": summary(raw_durable),
        "store_from_complete_call": summary(ours),
        "store_after_commit": summary(after_commit),
        "p50_ratio": round(percentile(ours, 50) / percentile(raw, 50), 3),
        "p50_ratio_to_durable_write": round(percentile(ours, 50) / percentile(raw_durable, 50), 3),
        "_samples": {"raw_listen_notify": raw, "raw_durable_write": raw_durable, "store": ours},
    }


def overtake(store: AssessmentStore, backlog: int) -> dict[str, Any]:
    """Queue ``backlog`` low-priority assessments and then one high-priority one while
    the worker runs: how many low ones still waiting when it arrived ran before it."""
    low = store.batch_create_assessments(
        [AssessmentRequest(assessment_type="noop", priority=1) for _ in range(backlog)]
    )
    high = store.create_assessment(AssessmentRequest(assessment_type="noop", priority=9))
    engine = create_engine(store.settings.database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            deadline = time.monotonic() + 600
            while True:
                high_done = conn.execute(
                    text(
                        "SELECT completed_at IS NOT NULL FROM assessment_states "
                        "WHERE assessment_id = :id"
                    ),
                    {"id": high},
                ).scalar_one()
                conn.rollback()
                if high_done:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("the high-priority assessment never completed")
                time.sleep(0.25)
            # The worker is running while the backlog is published, so some low ones
            # finish before the high one even exists: what counts is how many of
            # those still waiting when it arrived ran before it.
            waiting, overtaken_by = conn.execute(
                text(
                    "WITH h AS (SELECT created_at, completed_at FROM assessment_states "
                    "WHERE assessment_id = :id) "
                    "SELECT count(*) FILTER (WHERE s.completed_at > h.created_at), "
                    "count(*) FILTER (WHERE s.completed_at > h.created_at "
                    "AND s.completed_at < h.completed_at) "
                    "FROM assessment_states s, h WHERE s.assessment_id = ANY(:ids)"
                ),
                {"ids": low, "id": high},
            ).one()
    finally:
        engine.dispose()
    return {
        "backlog": backlog,
        "low_still_waiting_when_high_arrived": int(waiting),
        "low_run_before_high_after_it_arrived": int(overtaken_by),
    }


def rss_mb(process: ChildProcess) -> float:
    """Resident memory of a worker: its main process and every child."""
    assert process.process is not None
    root = psutil.Process(process.process.pid)
    total = root.memory_info().rss + sum(c.memory_info().rss for c in root.children(True))
    return round(float(total) / 2**20, 1)


def database_connections(url: str) -> dict[str, int]:
    """Connections to the database of ``url`` by application name."""
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT coalesce(application_name, ''), count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() GROUP BY 1"
            )
        ).all()
    engine.dispose()
    return {str(name): int(count) for name, count in rows}


def in_flight_with_waiters(
    store: AssessmentStore, settings: Settings, logs: Path, count: int, waves: int = 2
) -> dict[str, Any]:
    """``count`` assessments created at once, each awaited by its own HTTP long-poll
    on one API process while the worker drains them, in ``waves`` one after the other:
    the API's memory and database connections sampled twice a second, and how many
    waits returned completed. A later wave peaking higher than the first is growth
    (a leak per waiter), not noise."""
    api, base = _api("api-waiters", settings, logs, cache_enabled=False)
    token = issue_token(SECRET, "bench", Role.ADMIN, timedelta(hours=1))
    assert api.process is not None
    api_process = psutil.Process(api.process.pid)
    rss_before = api_process.memory_info().rss
    started = time.monotonic()
    series: list[tuple[float, float, int]] = []  # (seconds, API RSS MB, API connections)

    def api_connections() -> int:
        return sum(
            n
            for name, n in database_connections(store.settings.database_url).items()
            if name.startswith("assessment-store-api")
        )

    async def wave() -> tuple[list[int], float, int]:
        peak = {"rss": 0, "connections": 0}
        limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
        async with httpx.AsyncClient(
            base_url=base,
            headers={"Authorization": f"Bearer {token}"},
            limits=limits,
            timeout=180,
        ) as client:
            ids = store.batch_create_assessments(
                [AssessmentRequest(assessment_type="noop", priority=5) for _ in range(count)]
            )
            waits = [client.get(f"/v1/assessments/{i}/wait", params={"timeout": 120}) for i in ids]

            async def watch() -> None:
                while True:
                    rss, connections = api_process.memory_info().rss, api_connections()
                    peak["rss"] = max(peak["rss"], rss)
                    peak["connections"] = max(peak["connections"], connections)
                    series.append(
                        (round(time.monotonic() - started, 1), round(rss / 2**20, 1), connections)
                    )
                    await asyncio.sleep(0.5)

            watcher = asyncio.create_task(watch())
            responses = await asyncio.gather(*waits)
            watcher.cancel()
            return [r.status_code for r in responses], peak["rss"] / 2**20, peak["connections"]

    results: list[tuple[list[int], float, int]] = []
    try:
        for _ in range(waves):
            results.append(asyncio.run(wave()))
        rss_after = api_process.memory_info().rss
    finally:
        api.stop()
    peaks = [round(peak, 1) for _, peak, _ in results]
    return {
        "assessments_and_waiters": count,
        "waves": waves,
        "waits_answered_200": min(statuses.count(200) for statuses, _, _ in results),
        "api_rss_mb_before": round(rss_before / 2**20, 1),
        "api_rss_mb_peak": max(peaks),
        "api_rss_mb_peak_per_wave": peaks,
        "api_rss_growth_mb_between_waves": round(peaks[-1] - peaks[0], 1),
        "api_rss_mb_after": round(rss_after / 2**20, 1),
        "api_database_connections_peak": max(c for _, _, c in results),
        "database_pool_size": settings.database_pool_size,
        "database_max_overflow": settings.database_max_overflow,
        "samples": series,
    }


def worker_connections(url: str) -> int:
    """Database connections held by worker processes (their application name)."""
    return sum(
        n for name, n in database_connections(url).items() if name.startswith("assessment-store-w")
    )


def soak(store: AssessmentStore, worker: ChildProcess, total: int, step: int) -> dict[str, Any]:
    """Run ``total`` no-op assessments through the worker ``step`` at a time, noting its
    memory and database connections after each step: flat means no per-assessment leak."""
    url = store.settings.database_url
    engine = create_engine(url, poolclass=pool.NullPool)
    samples: list[tuple[int, float]] = [(0, rss_mb(worker))]
    connections: list[tuple[int, int]] = [(0, worker_connections(url))]
    done = 0
    try:
        with engine.connect() as conn:
            while done < total:
                batch = min(step, total - done)
                store.batch_create_assessments(
                    [AssessmentRequest(assessment_type="noop", priority=5) for _ in range(batch)]
                )
                deadline = time.monotonic() + 600
                while conn.execute(
                    text("SELECT count(*) FROM assessment_states WHERE state <> 'completed'")
                ).scalar_one():
                    conn.rollback()
                    if time.monotonic() > deadline:
                        raise TimeoutError("soak step did not finish")
                    time.sleep(0.25)
                conn.rollback()
                conn.execute(text("TRUNCATE assessment_states CASCADE"))
                conn.commit()
                done += batch
                samples.append((done, rss_mb(worker)))
                connections.append((done, worker_connections(url)))
    finally:
        engine.dispose()
    warm = min(step * 2, total)
    settled = [mb for n, mb in samples if n >= warm]
    settled_connections = [c for n, c in connections if n >= warm]
    return {
        "assessments": total,
        "rss_mb": samples,
        "worker_connections": connections,
        "growth_mb_after_warm_up": round(settled[-1] - settled[0], 1) if settled else 0.0,
        "connections_growth_after_warm_up": settled_connections[-1] - settled_connections[0]
        if settled_connections
        else 0,
    }
