"""API benchmark: how fast a waiter wakes after a completion commits (against a raw
LISTEN/NOTIFY round trip), and get_state over HTTP, uncached and cached (against the
API's own /health as the HTTP floor).

Run: ``ops/bench.sh api``. One scratch database; the two API processes (cache off,
cache on) run side by side with the same settings otherwise.
"""

from __future__ import annotations

import argparse
import json
import select
import tempfile
import threading
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import psycopg2.extensions

from assessment_store import AssessmentRequest, AssessmentStore, load_settings
from assessment_store.demo.processes import (
    ChildProcess,
    api_server,
    child_environment,
    free_port,
)
from assessment_store.dispatch import NullDispatcher
from assessment_store.http.auth import Role, issue_token
from assessment_store.notify import libpq_dsn
from assessment_store.percentiles import percentile
from ops.bench.common import scratch_database

ROOT = Path(__file__).resolve().parents[2]
SECRET = "bench-secret-0123456789abcdefghijklmnop"


def _summary(samples_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(samples_ms, 50), 3),
        "p99_ms": round(percentile(samples_ms, 99), 3),
    }


def raw_notify_round_trip(url: str, rounds: int, *, durable: bool = False) -> list[float]:
    """From issuing a NOTIFY (and its commit) until a LISTENing thread has it;
    ``durable`` also writes a row in the same transaction, so that the commit waits
    for the disk as a completion's does (a NOTIFY alone writes no log)."""
    listener = psycopg2.connect(libpq_dsn(url))
    listener.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
    listener.cursor().execute("LISTEN bench_raw")
    received: list[float] = []
    arrived = threading.Event()
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            if select.select([listener], [], [], 0.2)[0]:
                listener.poll()
                while listener.notifies:
                    listener.notifies.pop()
                    received.append(time.perf_counter())
                    arrived.set()

    thread = threading.Thread(target=listen)
    thread.start()
    sender = psycopg2.connect(libpq_dsn(url))
    with sender.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_wake (id bigserial PRIMARY KEY)")
    sender.commit()
    samples = []
    for _ in range(rounds):
        arrived.clear()
        started = time.perf_counter()
        with sender.cursor() as cursor:
            if durable:
                cursor.execute("INSERT INTO bench_wake DEFAULT VALUES")
            cursor.execute("NOTIFY bench_raw, 'x'")
        sender.commit()
        arrived.wait(5)
        samples.append((received[-1] - started) * 1000)
    stop.set()
    thread.join()
    listener.close()
    sender.close()
    return samples


class _Waiter(threading.Thread):
    """Waits for one assessment and notes when the wait returned."""

    def __init__(self, store: AssessmentStore, assessment_id: str) -> None:
        super().__init__()
        self.store = store
        self.assessment_id = assessment_id
        self.returned = 0.0

    def run(self) -> None:
        self.store.wait_for_completion(self.assessment_id, timeout=30)
        self.returned = time.perf_counter()


def waiter_wake_up(store: AssessmentStore, rounds: int) -> tuple[list[float], list[float]]:
    """From calling complete_assessment until the assessment's waiter has returned (the
    transition, its commit, the notification, the wake-up and the waiter's re-read), and
    from complete_assessment's return (the commit done) until then."""
    samples, after_commit = [], []
    for _ in range(rounds):
        assessment_id = store.create_assessment(
            AssessmentRequest(assessment_type="health", server_name="127.0.0.1")
        )
        store.start_processing(assessment_id, "bench")
        waiter = _Waiter(store, assessment_id)
        waiter.start()
        deadline = time.monotonic() + 5
        while store.notifier.watch_count == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(0.005)  # past the waiter's first read
        started = time.perf_counter()
        store.complete_assessment(assessment_id, {})
        committed = time.perf_counter()
        waiter.join()
        samples.append((waiter.returned - started) * 1000)
        after_commit.append((waiter.returned - committed) * 1000)
    return samples, after_commit


def start_api(name: str, url: str, cache: bool, logs: Path) -> tuple[ChildProcess, str]:
    port = free_port()
    settings = load_settings(
        database_url=url, jwt_secret=SECRET, cache_enabled=cache, cache_ttl_seconds=1.0
    )
    process = api_server(name, child_environment(settings), logs, port, cwd=ROOT)
    process.start()
    process.wait_ready()
    return process, f"http://127.0.0.1:{port}"


def http_reads(base: str, path: str, token: str, count: int) -> list[float]:
    samples = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(50):
            client.get(path)
        for _ in range(count):
            started = time.perf_counter()
            response = client.get(path)
            samples.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--reads", type=int, default=2000)
    args = parser.parse_args()
    report: dict[str, Any] = {}
    with scratch_database() as url, tempfile.TemporaryDirectory() as logs, ExitStack() as stack:
        store = AssessmentStore(load_settings(database_url=url), dispatcher=NullDispatcher())
        stack.callback(store.close)
        raw: list[float] = []
        ours: list[float] = []
        ours_after_commit: list[float] = []
        for _ in range(4):  # alternate so drift hits both alike
            raw += raw_notify_round_trip(url, args.rounds // 4)
            total, after_commit = waiter_wake_up(store, args.rounds // 4)
            ours += total
            ours_after_commit += after_commit
        report["waiter_wake_up"] = {
            "raw_listen_notify": _summary(raw),
            "store_from_complete_call": _summary(ours),
            "store_after_commit": _summary(ours_after_commit),
            "p50_ratio": round(percentile(ours, 50) / percentile(raw, 50), 2),
        }
        done = store.create_assessment(
            AssessmentRequest(assessment_type="health", server_name="127.0.0.1"), created_by="bench"
        )
        store.start_processing(done, "bench")
        store.complete_assessment(done, {"ok": True})
        token = issue_token(SECRET, "bench", Role.PRODUCER, timedelta(hours=1))
        uncached, base_plain = start_api("api-plain", url, False, Path(logs))
        stack.callback(uncached.stop)
        cached, base_cached = start_api("api-cached", url, True, Path(logs))
        stack.callback(cached.stop)
        results: dict[str, list[float]] = {"health": [], "uncached": [], "cached": []}
        for _ in range(4):
            results["health"] += http_reads(base_plain, "/health", token, args.reads // 4)
            results["uncached"] += http_reads(
                base_plain, f"/v1/assessments/{done}", token, args.reads // 4
            )
            results["cached"] += http_reads(
                base_cached, f"/v1/assessments/{done}", token, args.reads // 4
            )
        report["get_state_over_http"] = {
            name: _summary(samples) for name, samples in results.items()
        }
        report["get_state_over_http"]["cached_vs_uncached_p50"] = round(
            percentile(results["cached"], 50) / percentile(results["uncached"], 50), 3
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
