"""Recovery benchmark: how long until every assessment is done after a worker is
SIGKILLed mid-task, and after the broker loses everything (FLUSHDB of its database),
with the default settings and with short ones.

Run: ``ops/bench.sh recovery [--skip-defaults]``. Real worker and beat processes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import text

from assessment_store import AssessmentRequest, AssessmentStore, load_settings
from assessment_store.demo.processes import (
    ChildProcess,
    celery_beat,
    celery_worker,
    child_environment,
)
from assessment_store.queues import queue_list
from ops.bench.common import scratch_database

BENCH_REDIS_DB = 11
ROOT = Path(__file__).resolve().parents[2]
QUEUES = queue_list()
SHORT = {
    "lease_seconds": 2.0,
    "redispatch_after_seconds": 3.0,
    "maintenance_interval_seconds": 1.0,
    "retry_backoff_seconds": 0.2,
    "retry_backoff_max_seconds": 1.0,
}


@contextmanager
def system(tuning: dict[str, float]) -> Iterator[tuple[AssessmentStore, dict[str, str], Path]]:
    base = load_settings()
    broker = base.redis_url.rsplit("/", 1)[0] + f"/{BENCH_REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    with scratch_database() as url, tempfile.TemporaryDirectory() as logs, ExitStack() as stack:
        settings = load_settings(
            database_url=url,
            redis_url=broker,
            broker_url=broker,
            handlers="sleepy=ops.bench.plugins:sleepy",
            **tuning,
        )
        store = AssessmentStore(settings)
        stack.callback(store.close)
        yield store, child_environment(settings), Path(logs)


def _start(process: ChildProcess) -> ChildProcess:
    process.start()
    process.wait_ready()
    return process


def _unfinished(store: AssessmentStore, ids: list[str]) -> int:
    with store.engines.reader.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM assessment_states WHERE state <> 'completed' "
                    "AND assessment_id = ANY(:ids)"
                ),
                {"ids": ids},
            ).scalar_one()
        )


def _wait_all_done(store: AssessmentStore, ids: list[str], timeout: float) -> float:
    started = time.monotonic()
    while _unfinished(store, ids):
        if time.monotonic() - started > timeout:
            raise TimeoutError("recovery did not finish")
        time.sleep(0.1)
    return time.monotonic() - started


def after_sigkill(tuning: dict[str, float], timeout: float) -> dict[str, Any]:
    with system(tuning) as (store, env, logs), ExitStack() as stack:
        doomed = stack.enter_context(
            _start(celery_worker("doomed", env, logs, queues=QUEUES, concurrency=2, cwd=ROOT))
        )
        stack.enter_context(
            _start(celery_worker("survivor", env, logs, queues=QUEUES, concurrency=2, cwd=ROOT))
        )
        stack.enter_context(_start(celery_beat("beat", env, logs, cwd=ROOT)))
        ids = store.batch_create_assessments(
            [AssessmentRequest(assessment_type="sleepy", server_name="sleep:1") for _ in range(8)]
        )
        while True:
            with store.engines.reader.connect() as conn:
                victims = list(
                    conn.execute(
                        text(
                            "SELECT assessment_id FROM assessment_states "
                            "WHERE state = 'processing' AND worker_id LIKE 'doomed@%' "
                            "AND progress >= 10"
                        )
                    ).scalars()
                )
            if victims:
                break
            time.sleep(0.05)
        doomed.kill()
        recovered = _wait_all_done(store, victims, timeout)
        _wait_all_done(store, ids, timeout)
        return {
            "killed_in_flight": len(victims),
            "seconds_until_they_completed": round(recovered, 1),
        }


def after_flush(tuning: dict[str, float], timeout: float) -> dict[str, Any]:
    with system(tuning) as (store, env, logs), ExitStack() as stack:
        stack.enter_context(
            _start(celery_worker("worker", env, logs, queues=QUEUES, concurrency=2, cwd=ROOT))
        )
        stack.enter_context(_start(celery_beat("beat", env, logs, cwd=ROOT)))
        ids = store.batch_create_assessments(
            [
                AssessmentRequest(assessment_type="sleepy", server_name="sleep:0.2")
                for _ in range(30)
            ]
        )
        while _unfinished(store, ids) > 26:
            time.sleep(0.02)
        redis.Redis.from_url(store.settings.effective_broker_url).flushdb()
        lost = _unfinished(store, ids)
        recovered = _wait_all_done(store, ids, timeout)
        return {"unfinished_at_flush": lost, "seconds_until_all_completed": round(recovered, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--skip-defaults",
        action="store_true",
        help="only the short settings (the defaults take minutes)",
    )
    args = parser.parse_args()
    defaults = load_settings()
    report: dict[str, Any] = {
        "short_settings": {
            **SHORT,
            "sigkill": after_sigkill(SHORT, 120),
            "flush": after_flush(SHORT, 120),
        },
    }
    if not args.skip_defaults:
        names = list(SHORT)
        report["default_settings"] = {
            **{n: getattr(defaults, n) for n in names},
            "sigkill": after_sigkill({}, 600),
            "flush": after_flush({}, 600),
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
