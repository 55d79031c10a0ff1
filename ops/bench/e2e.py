"""End-to-end throughput of no-op jobs: the store against the systems it must beat.

Every system runs its own worker (prefork, or procrastinate's equivalent, at the same
concurrency) on its own Redis database; all are started once and wait idle between
their turns, and rounds interleave the systems so the machine's drift hits each
alike. A round runs from the first enqueue (the store's batch create and publish
included) to the moment its last job finished, as the system itself recorded it
(a timestamp in PostgreSQL or Redis): the watcher polls one cheap count four times a
second and never decides the figure.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras
import redis
from celery import Celery

from assessment_store import AssessmentRequest, AssessmentStore, load_settings
from assessment_store.celery_config import celery_settings
from assessment_store.config import Settings
from assessment_store.demo.processes import ChildProcess, child_environment, free_port
from assessment_store.queues import ASSESSMENT_QUEUES, NORMAL_QUEUE, queue_list
from ops.bench import cpu
from ops.bench.baselines import counting
from ops.bench.common import libpq, redis_db_url

ROOT = Path(__file__).resolve().parents[2]
POLL_SECONDS = 0.25
ROUND_TIMEOUT_SECONDS = 600.0
# Celery's default log level (WARNING) hides "ready."; its banner is always printed.
CELERY_BANNER = "[queues]"
Progress = Callable[[str], tuple[int, float | None]]


@dataclass
class Round:
    """One system's round: jobs/s, the completion curve (seconds, jobs done) and the
    CPU each job cost, by process."""

    system: str
    jobs: int
    seconds: float
    curve: list[tuple[float, int]] = field(default_factory=list)
    cpu_ms_per_job: dict[str, float] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.jobs / self.seconds


@dataclass
class System:
    """A system under test: how to enqueue ``count`` jobs and how far it got."""

    name: str
    label: str
    worker: ChildProcess
    enqueue: Callable[[int, str], None]
    progress: Progress
    reset: Callable[[], None] = lambda: None


def run_round(system: System, count: int) -> Round:
    system.reset()
    run = uuid.uuid4().hex[:8]
    worker_pid = system.worker.process.pid if system.worker.process else None
    cpu_before = cpu.snapshot(worker_pid)
    started = time.time()
    system.enqueue(count, run)
    curve: list[tuple[float, int]] = []
    deadline = time.monotonic() + ROUND_TIMEOUT_SECONDS
    while True:
        done, last = system.progress(run)
        curve.append((round(time.time() - started, 3), done))
        if done >= count and last is not None:
            spent = cpu.per_job_ms(cpu_before, cpu.snapshot(worker_pid), count)
            return Round(system.name, count, max(last - started, 1e-6), curve, spent)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{system.name}: {done}/{count} jobs after {ROUND_TIMEOUT_SECONDS}s")
        time.sleep(POLL_SECONDS)


class Fleet:
    """The workers of every system, started together and stopped together."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.processes: list[ChildProcess] = []

    def start(
        self, name: str, command: list[str], env: dict[str, str], marker: str = " ready."
    ) -> ChildProcess:
        process = ChildProcess(name, command, env, self.logs, ready_marker=marker, cwd=ROOT)
        process.start()
        self.processes.append(process)
        return process

    def celery(
        self, name: str, app_module: str, env: dict[str, str], concurrency: int
    ) -> ChildProcess:
        """``celery worker`` with Celery's defaults but for pool and concurrency."""
        command = [
            *(sys.executable, "-m", "celery", "-A", app_module, "worker"),
            *("--pool", "prefork", "--concurrency", str(concurrency)),
            *("--hostname", f"{name}@%h"),
        ]
        return self.start(name, command, env, CELERY_BANNER)

    def wait_ready(self) -> None:
        for process in self.processes:
            process.wait_ready(120)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def _autocommit(dsn: str) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    return conn


def _count_and_last(conn: psycopg2.extensions.connection, sql: str) -> Progress:
    def progress(run: str) -> tuple[int, float | None]:
        with conn.cursor() as cur:
            cur.execute(sql)
            done, last = cur.fetchone() or (0, None)
        return int(done), (float(last) if last is not None else None)

    return progress


def _publish_each(app: Celery, task_name: str, args: list[tuple[Any, ...]], **options: Any) -> None:
    task = app.signature(task_name)
    with app.producer_or_acquire() as producer:
        for arguments in args:
            task.apply_async(arguments, producer=producer, **options)


def plain_celery(fleet: Fleet, broker: str, env: dict[str, str], concurrency: int) -> System:
    """Plain Celery, default worker settings, a no-op task."""
    client = redis.Redis.from_url(broker)
    client.flushdb()
    worker = fleet.celery(
        "plain-celery",
        "ops.bench.baselines.plain_celery",
        {**env, "BENCH_BROKER_URL": broker},
        concurrency,
    )
    app = Celery("plain-producer", broker=broker, set_as_current=False)
    return System(
        "plain_celery",
        "plain Celery no-op (default worker settings)",
        worker,
        lambda count, run: _publish_each(app, "plain.noop", [(run,)] * count),
        lambda run: counting.progress(client, run),
    )


def store_settings_celery(worker: ChildProcess, settings: Settings) -> System:
    """A no-op task on the store's own worker (the store's Celery settings)."""
    app = Celery("bench-producer", set_as_current=False)
    app.conf.update(celery_settings(settings))
    client = redis.Redis.from_url(settings.redis_url)
    return System(
        "celery_store_settings",
        "Celery no-op on the store's worker settings",
        worker,
        lambda count, run: _publish_each(
            app, "bench.raw_noop", [(run,)] * count, queue=NORMAL_QUEUE
        ),
        lambda run: counting.progress(client, run),
    )


def naive_loop(
    fleet: Fleet, broker: str, dsn: str, env: dict[str, str], concurrency: int, *, tuned: bool
) -> System:
    """Celery (default settings) + two compare-and-set transactions with audit rows:
    a connection per task (naive), or one kept per process (tuned)."""
    from ops.bench.baselines.naive_loop import SCHEMA

    conn = _autocommit(dsn)
    table, audit = ("tuned_jobs", "tuned_audit") if tuned else ("naive_jobs", "naive_audit")
    with conn.cursor() as cur:
        cur.execute(SCHEMA.format(jobs=table, audit=audit))
    redis.Redis.from_url(broker).flushdb()
    name = "tuned-loop" if tuned else "naive-loop"
    worker = fleet.celery(
        name,
        "ops.bench.baselines.naive_loop",
        {**env, "BENCH_BROKER_URL": broker, "BENCH_DSN": dsn},
        concurrency,
    )
    app = Celery(f"{name}-producer", broker=broker, set_as_current=False)
    task = "naive.run_tuned" if tuned else "naive.run"

    def reset() -> None:
        with conn.cursor() as cur:
            cur.execute(f"TRUNCATE {table}, {audit}")

    def enqueue(count: int, run: str) -> None:
        ids = [str(uuid.uuid4()) for _ in range(count)]
        with conn.cursor() as cur:
            psycopg2.extras.execute_values(
                cur,
                f"INSERT INTO {table} (id, state, version) VALUES %s",
                [(i,) for i in ids],
                template="(%s, 'pending', 1)",
                page_size=1000,
            )
        _publish_each(app, task, [(i,) for i in ids])

    progress = _count_and_last(
        conn,
        f"SELECT count(*), extract(epoch FROM max(at)) FROM {audit} WHERE new_state = 'completed'",
    )
    if tuned:
        label = "tuned Celery + PostgreSQL loop (a connection kept per process)"
    else:
        label = "naive Celery + PostgreSQL loop (a connection per task)"
    return System(name.replace("-", "_"), label, worker, enqueue, progress, reset)


def procrastinate_jobs(fleet: Fleet, dsn: str, env: dict[str, str], concurrency: int) -> System:
    """procrastinate 3.x no-op jobs, its worker at the same concurrency."""
    import procrastinate

    conn = _autocommit(dsn)
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('procrastinate_jobs') IS NULL")
        if (cur.fetchone() or (True,))[0]:
            cur.execute(procrastinate.schema.SchemaManager.get_schema())
    app_path = "ops.bench.baselines.procrastinate_jobs.app"
    command = [sys.executable, "-m", "procrastinate", "--app", app_path, "worker"]
    command += ["--concurrency", str(concurrency)]
    # No log line says "ready" at the default level: the warm-up round proves it.
    worker = fleet.start("procrastinate", command, {**env, "BENCH_DSN": dsn}, marker="")
    # The app reads its DSN on import, here as in its worker.
    os.environ["BENCH_DSN"] = dsn
    from ops.bench.baselines.procrastinate_jobs import app

    def reset() -> None:
        with conn.cursor() as cur:
            cur.execute("TRUNCATE procrastinate_jobs, procrastinate_events CASCADE")

    def enqueue(count: int, run: str) -> None:
        with app.open():
            deferrer = app.configure_task(name="noop")
            for start in range(0, count, 1000):
                deferrer.batch_defer(*({} for _ in range(min(1000, count - start))))

    progress = _count_and_last(
        conn,
        "SELECT count(*), extract(epoch FROM max(at)) FROM procrastinate_events "
        "WHERE type = 'succeeded'",
    )
    return System("procrastinate", "procrastinate no-op jobs", worker, enqueue, progress, reset)


def store_system(
    name: str, label: str, worker: ChildProcess, store: AssessmentStore, dsn: str
) -> System:
    """No-op assessments end to end: batch create, publish, claim, complete."""
    conn = _autocommit(dsn)

    def reset() -> None:
        with conn.cursor() as cur:
            cur.execute("TRUNCATE assessment_states CASCADE")

    def enqueue(count: int, run: str) -> None:
        store.batch_create_assessments(
            [AssessmentRequest(assessment_type="noop", priority=5) for _ in range(count)]
        )

    progress = _count_and_last(
        conn,
        "SELECT count(*), extract(epoch FROM max(completed_at)) FROM assessment_states "
        "WHERE state = 'completed'",
    )
    return System(name, label, worker, enqueue, progress, reset)


def store_worker(fleet: Fleet, name: str, settings: Settings, concurrency: int) -> ChildProcess:
    """The store's worker exactly as ``assessment-store worker`` starts it, plus the
    benchmark's no-op handler and raw task."""
    command = [
        *(sys.executable, "-m", "assessment_store.cli", "worker"),
        *("--queues", queue_list(ASSESSMENT_QUEUES), "--concurrency", str(concurrency)),
        *("--hostname", f"{name}@%h", "--include", "ops.bench.plugins"),
    ]
    return fleet.start(name, command, child_environment(settings))


def bench_settings(url: str, base: Settings, redis_db: int, **overrides: Any) -> Settings:
    """The store's default settings on the scratch database and a Redis database of
    its own; beat's jobs are not run (no beat), and the no-op handler is registered."""
    return load_settings(
        database_url=url,
        redis_url=redis_db_url(base.redis_url, redis_db),
        broker_url=redis_db_url(base.redis_url, redis_db),
        handlers="noop=ops.bench.plugins:noop",
        worker_metrics_port=free_port(),
        **overrides,
    )


@contextmanager
def systems(
    url: str, base: Settings, logs: Path, concurrency: int, *, with_events: bool
) -> Iterator[list[System]]:
    """Start every system's worker; yield the systems once all are ready; stop them."""
    dsn = libpq(url)
    fleet = Fleet(logs)
    with ExitStack() as stack:
        stack.callback(fleet.stop)
        settings = bench_settings(url, base, 10)
        redis.Redis.from_url(settings.redis_url).flushdb()
        worker = store_worker(fleet, "store", settings, concurrency)
        store = AssessmentStore(settings)
        stack.callback(store.close)
        env = child_environment(settings)
        found = [
            plain_celery(fleet, redis_db_url(base.redis_url, 13), env, concurrency),
            store_settings_celery(worker, settings),
            procrastinate_jobs(fleet, dsn, env, concurrency),
            naive_loop(fleet, redis_db_url(base.redis_url, 14), dsn, env, concurrency, tuned=False),
            naive_loop(fleet, redis_db_url(base.redis_url, 12), dsn, env, concurrency, tuned=True),
            store_system("store", "the store, no-op assessments", worker, store, dsn),
        ]
        if with_events:
            evented = bench_settings(url, base, 15, task_events=True)
            redis.Redis.from_url(evented.redis_url).flushdb()
            evented_worker = store_worker(fleet, "store-events", evented, concurrency)
            evented_store = AssessmentStore(evented)
            stack.callback(evented_store.close)
            found.append(
                store_system(
                    "store_events_on",
                    "the store, task events on",
                    evented_worker,
                    evented_store,
                    dsn,
                )
            )
        fleet.wait_ready()
        yield found


def summarise(rounds: list[Round]) -> dict[str, Any]:
    rates = sorted(r.per_second for r in rounds)
    cpu_parts = sorted({part for r in rounds for part in r.cpu_ms_per_job})
    return {
        "jobs_per_round": rounds[0].jobs,
        "median_per_s": round(rates[len(rates) // 2], 1),
        "min_per_s": round(rates[0], 1),
        "max_per_s": round(rates[-1], 1),
        "rounds_per_s": [round(r.per_second, 1) for r in rounds],
        "cpu_ms_per_job": {
            part: round(
                sorted(r.cpu_ms_per_job.get(part, 0.0) for r in rounds)[len(rounds) // 2], 3
            )
            for part in cpu_parts
        },
    }
