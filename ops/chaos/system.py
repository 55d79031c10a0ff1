"""One system under fault: real worker, beat and API processes on one database and
one broker, a producer store, and the checker's own connection.

Every process runs in a process group of its own (assessment_store.demo.processes),
so a SIGKILL takes a worker's main process and its prefork children down together.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from sqlalchemy import Connection, Engine, create_engine, pool, text
from sqlalchemy.exc import OperationalError

from assessment_store import AssessmentStore, load_settings
from assessment_store.config import Settings
from assessment_store.demo.processes import (
    PROJECT_ROOT,
    ChildProcess,
    api_server,
    celery_beat,
    celery_worker,
    child_environment,
    free_port,
    stop_all,
)
from assessment_store.queues import queue_list
from ops.chaos.handlers import HANDLER_SETTING
from ops.chaos.invariants import (
    FINISHED_SQL,
    Findings,
    check,
    finished_count,
    unfinished_count,
)
from ops.chaos.polling import until

API_SECRET = "chaos-api-secret-0123456789abcdefghijklmnop"
# Short leases and intervals (as the acceptance tests use) so that faults heal within
# seconds: a lost attempt is rescued 2 s after its last renewal plus a 1 s tick, a
# lost message re-published after 3 s.
FAULT_TUNING: dict[str, object] = {
    "handlers": HANDLER_SETTING,
    "lease_seconds": 2,
    "redispatch_after_seconds": 3,
    "maintenance_interval_seconds": 1,
    "retry_backoff_seconds": 0.2,
    "retry_backoff_max_seconds": 1,
    "default_timeout_seconds": 60,
    "broker_visibility_timeout_seconds": 3600,
    # A producer facing a dead broker gives up on a publish quickly (the row is the
    # promise; re-dispatch publishes it later).
    "broker_publish_timeout_seconds": 0.5,
    "worker_metrics_port": 0,
    "jwt_secret": API_SECRET,
    "database_pool_size": 4,
    "database_max_overflow": 8,
}


def fault_settings(database_url: str, broker_url: str, **overrides: object) -> Settings:
    """Settings for a system under fault: FAULT_TUNING plus ``overrides``."""
    return load_settings(
        **{
            **FAULT_TUNING,
            "database_url": database_url,
            "redis_url": broker_url,
            "broker_url": broker_url,
            **overrides,
        }
    )


def orphan_grace_seconds(settings: Settings) -> float:
    """How long past its lease a processing row may wait for the rescue job: a tick to
    notice, a tick of slack, and a few seconds for a busy machine."""
    return settings.lease_seconds + 2 * settings.maintenance_interval_seconds + 5


class System:
    """Workers, beats and an API on ``settings``; stopped together on exit."""

    def __init__(
        self, settings: Settings, log_dir: Path, *, producer_broker_url: str | None = None
    ) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.env = child_environment(settings)
        self.producer_broker_url = producer_broker_url
        self.workers: dict[str, ChildProcess] = {}
        self.beats: dict[str, ChildProcess] = {}
        self.api: ChildProcess | None = None
        self.api_url: str | None = None
        self.engine: Engine = create_engine(settings.database_url, poolclass=pool.NullPool)
        self._producer: AssessmentStore | None = None

    # -- the producer and the checker ------------------------------------------------

    @property
    def producer(self) -> AssessmentStore:
        """A producer's store: publishes after every commit (through the proxy, when
        the system has one for its producer)."""
        if self._producer is None:
            settings = self.settings
            if self.producer_broker_url is not None:
                settings = settings.model_copy(update={"broker_url": self.producer_broker_url})
            self._producer = AssessmentStore(settings, application_name="chaos-producer")
        return self._producer

    @contextlib.contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def check(self, *, mid_run: bool = False) -> Findings:
        """The invariants now; ``mid_run`` gives processing rows the rescue job's
        reaction time before they count as orphaned."""
        grace = orphan_grace_seconds(self.settings) if mid_run else 0.0
        with self.connect() as conn:
            return check(conn, orphan_grace_seconds=grace)

    def unfinished(self, ids: list[str] | None = None) -> int:
        with self.connect() as conn:
            return unfinished_count(conn, ids)

    def finished(self) -> int:
        with self.connect() as conn:
            return finished_count(conn)

    def wait_settled(self, timeout: float, ids: list[str] | None = None) -> float:
        """Seconds until every assessment (of ``ids``) is finished."""
        return until(
            lambda: self.unfinished(ids) == 0,
            timeout=timeout,
            message=lambda: (
                f"{self.unfinished(ids)} assessment(s) never finished; logs in {self.log_dir}"
            ),
        )

    def try_finished(self) -> int | None:
        """``finished()``, or None while the database does not answer."""
        try:
            return self.finished()
        except OperationalError:
            return None

    def unfinished_ids(self) -> set[str]:
        with self.connect() as conn:
            return set(
                conn.execute(
                    text(
                        f"SELECT assessment_id FROM assessment_states AS s WHERE NOT {FINISHED_SQL}"
                    )
                ).scalars()
            )

    def redispatched(self, ids: list[str]) -> set[str]:
        """Which of ``ids`` the re-dispatch job published again (at least once)."""
        with self.connect() as conn:
            return set(
                conn.execute(
                    text(
                        "SELECT assessment_id FROM assessment_leases "
                        "WHERE dispatch_count > 0 AND assessment_id = ANY(:ids)"
                    ),
                    {"ids": ids},
                ).scalars()
            )

    def processing_of(self, worker: str) -> list[str]:
        """Assessments the worker named ``worker`` is running now (by the row)."""
        with self.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "SELECT assessment_id FROM assessment_states "
                        "WHERE state = 'processing' AND worker_id LIKE :prefix"
                    ),
                    {"prefix": f"{worker}@%"},
                ).scalars()
            )

    # -- processes ---------------------------------------------------------------------

    def start_workers(
        self, *names: str, concurrency: int = 2, env: dict[str, str] | None = None
    ) -> list[ChildProcess]:
        """Start the workers together (their start-ups overlap), then wait for each."""
        started = []
        for name in names:
            process = celery_worker(
                name,
                env or self.env,
                self.log_dir,
                queues=queue_list(),
                concurrency=concurrency,
                cwd=PROJECT_ROOT,
            )
            process.start()
            self.workers[name] = process
            started.append(process)
        for process in started:
            process.wait_ready()
        return started

    def restart_worker(self, name: str, timeout: float = 60) -> None:
        """Start the (killed or stopped) worker ``name`` again, appending to its log,
        and wait until this run of it, not the last one, says it is ready."""
        process = self.workers[name]
        readied = process.log().count(process.ready_marker)
        process.start()
        until(
            lambda: process.log().count(process.ready_marker) > readied,
            timeout=timeout,
            message=lambda: f"{name} not ready again after {timeout:g}s: {process.log()[-2000:]}",
        )

    def start_beat(self, name: str = "beat") -> ChildProcess:
        process = celery_beat(name, self.env, self.log_dir, cwd=PROJECT_ROOT)
        process.start()
        process.wait_ready()
        self.beats[name] = process
        return process

    def stop_beat(self, name: str) -> None:
        self.beats.pop(name).stop(timeout=5)

    def start_api(self) -> str:
        """``assessment-store api`` on a free port; its base URL."""
        port = free_port()
        self.api = api_server("api", self.env, self.log_dir, port, cwd=PROJECT_ROOT)
        self.api.start()
        self.api.wait_ready()
        self.api_url = f"http://127.0.0.1:{port}"
        return self.api_url

    def logs(self, *names: str) -> str:
        """The named processes' logs (every process's when none is named)."""
        processes = {**self.workers, **self.beats, **({"api": self.api} if self.api else {})}
        return "\n".join(
            f"--- {name} ---\n{process.log()[-4000:]}"
            for name, process in processes.items()
            if not names or name in names
        )

    def count_in_worker_logs(self, needle: str) -> int:
        """How often ``needle`` appears in the workers' whole logs."""
        return sum(process.log().count(needle) for process in self.workers.values())

    def close(self) -> None:
        """Stop every process (SIGTERM to all at once, SIGKILL to any still running a
        few seconds later) and the store."""
        processes = [
            process
            for process in [*self.workers.values(), *self.beats.values(), self.api]
            if process is not None and process.process is not None and process.running
        ]
        stop_all(processes, timeout=3)
        if self._producer is not None:
            self._producer.close()
        self.engine.dispose()

    def __enter__(self) -> System:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
