"""Worker benchmark: end-to-end assessments/s against raw Celery no-op tasks, and the
rank at which a high-priority assessment overtakes a low-priority backlog.

Run: ``ops/bench.sh workers``. Both the baseline and the store run on the same worker
process (prefork, same concurrency and settings), alternating round by round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from sqlalchemy import create_engine, pool, text

from assessment_store import AssessmentRequest, AssessmentStore, load_settings
from assessment_store.demo.processes import celery_worker, child_environment
from assessment_store.publishing import CeleryDispatcher
from assessment_store.queues import ASSESSMENT_QUEUES, NORMAL_QUEUE, queue_list
from ops.bench.common import scratch_database
from ops.bench.plugins import COUNTER_KEY
from workers.celery_app import configure

BENCH_REDIS_DB = 10
ROOT = Path(__file__).resolve().parents[2]
QUEUES = queue_list(ASSESSMENT_QUEUES)


def _wait(condition: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark round did not finish")
        time.sleep(0.05)


def raw_round(app: Celery, client: redis.Redis, count: int) -> float:
    client.set(COUNTER_KEY, 0)
    task = app.signature("bench.raw_noop")
    started = time.perf_counter()
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            task.apply_async(queue=NORMAL_QUEUE, producer=producer)
    _wait(lambda: int(client.get(COUNTER_KEY) or 0) >= count)
    return count / (time.perf_counter() - started)


def store_round(store: AssessmentStore, count: int) -> float:
    requests = [AssessmentRequest(assessment_type="noop", priority=5) for _ in range(count)]
    started = time.perf_counter()
    ids = store.batch_create_assessments(requests)
    # One connection, polled gently, so the watching costs the workers little.
    with store.engines.reader.connect() as conn:

        def done() -> bool:
            finished = conn.execute(
                text(
                    "SELECT count(*) FROM assessment_states WHERE state = 'completed' "
                    "AND assessment_id = ANY(:ids)"
                ),
                {"ids": ids},
            ).scalar_one()
            return int(finished) >= count

        _wait(done)
    return count / (time.perf_counter() - started)


def overtake_rank(
    store: AssessmentStore, env: dict[str, str], log_dir: Path, concurrency: int, backlog: int
) -> int:
    """Queue ``backlog`` low-priority assessments, then one high; start a worker; rank."""
    low = store.batch_create_assessments(
        [AssessmentRequest(assessment_type="noop", priority=1) for _ in range(backlog)]
    )
    high = store.create_assessment(AssessmentRequest(assessment_type="noop", priority=9))
    with celery_worker(
        "overtake", env, log_dir, queues=QUEUES, concurrency=concurrency, cwd=ROOT
    ) as worker:
        worker.start()
        worker.wait_ready()
        ids = [*low, high]
        engine = create_engine(store.settings.database_url, poolclass=pool.NullPool)
        with engine.connect() as conn:

            def all_done() -> bool:
                n = conn.execute(
                    text(
                        "SELECT count(*) FROM assessment_states WHERE "
                        "state = 'completed' AND assessment_id = ANY(:ids)"
                    ),
                    {"ids": ids},
                ).scalar_one()
                conn.rollback()
                return int(n) == len(ids)

            _wait(all_done)
            order = list(
                conn.execute(
                    text(
                        "SELECT assessment_id FROM assessment_states "
                        "WHERE assessment_id = ANY(:ids) ORDER BY completed_at, assessment_id"
                    ),
                    {"ids": ids},
                ).scalars()
            )
        engine.dispose()
    return order.index(high) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=1000, help="tasks per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    base = load_settings()
    broker = base.redis_url.rsplit("/", 1)[0] + f"/{BENCH_REDIS_DB}"
    client = redis.Redis.from_url(broker)
    client.flushdb()
    with scratch_database() as url, tempfile.TemporaryDirectory() as logs:
        settings = load_settings(
            database_url=url,
            redis_url=broker,
            broker_url=broker,
            handlers="noop=ops.bench.plugins:noop",
        )
        env = child_environment(settings)
        app = Celery("bench-producer")
        configure(app, settings)
        store = AssessmentStore(settings, dispatcher=CeleryDispatcher(settings, app))
        raw_rates: list[float] = []
        store_rates: list[float] = []
        with celery_worker(
            "bench",
            env,
            Path(logs),
            queues=QUEUES,
            concurrency=args.concurrency,
            extra=["--include", "ops.bench.plugins"],
            cwd=ROOT,
        ) as worker:
            worker.start()
            worker.wait_ready()
            raw_round(app, client, 100)  # warm both paths
            store_round(store, 100)
            for _ in range(args.rounds):
                raw_rates.append(raw_round(app, client, args.count))
                store_rates.append(store_round(store, args.count))
        ranks = [overtake_rank(store, env, Path(logs), args.concurrency, 300) for _ in range(2)]
        store.close()
        app.close()
    client.flushdb()
    raw, ours = statistics.median(raw_rates), statistics.median(store_rates)
    print(
        json.dumps(
            {
                "worker": {
                    "pool": "prefork",
                    "concurrency": args.concurrency,
                    "tasks_per_round": args.count,
                    "rounds": args.rounds,
                },
                "raw_celery_noop_per_s": round(raw, 1),
                "store_noop_assessments_per_s": round(ours, 1),
                "store_vs_raw": round(ours / raw, 3),
                "rounds_raw": [round(r, 1) for r in raw_rates],
                "rounds_store": [round(r, 1) for r in store_rates],
                "high_priority_rank_among_301": ranks,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
