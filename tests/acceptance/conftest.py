"""Fixtures for the whole system: real workers, beat, Redis broker and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import make_url

from assessment_store import Assessment, AssessmentStore, load_settings
from assessment_store.config import Settings
from assessment_store.demo.processes import child_environment, stop_all
from assessment_store.queues import queue_list
from tests.acceptance.processes import CeleryProcess, beat, worker

# The acceptance tests own this Redis database and flush it around every test.
ACCEPTANCE_REDIS_DB = 9
PLUGINS = ",".join(
    f"{name}=tests.acceptance.plugins:{name}"
    for name in (
        "noop",
        "sleepy",
        "flaky",
        "always_fails",
        "held",
        "sleeper",
        "chatty",
        "stubborn",
        "gated",
    )
)


def flushed_redis_database(base_settings: Settings, db: int) -> Iterator[str]:
    """Database ``db`` of the configured Redis server, empty at the start and the end
    of a test: a fixture's body (each suite owns one database)."""
    url = make_url(base_settings.redis_url.replace("redis://", "postgresql://", 1))
    broker = f"redis://{url.host}:{url.port or 6379}/{db}"
    client = redis.Redis.from_url(broker)
    client.flushdb()
    yield broker
    client.flushdb()
    client.close()


@pytest.fixture
def broker_url(base_settings: Settings) -> Iterator[str]:
    yield from flushed_redis_database(base_settings, ACCEPTANCE_REDIS_DB)


@pytest.fixture
def system_settings(settings: Settings, broker_url: str) -> Settings:
    """Short leases, intervals and backoff so faults heal within a test's time."""
    return load_settings(
        database_url=settings.database_url,
        redis_url=broker_url,
        broker_url=broker_url,
        handlers=PLUGINS,
        lease_seconds=2,
        redispatch_after_seconds=3,
        maintenance_interval_seconds=1,
        retry_backoff_seconds=0.2,
        retry_backoff_max_seconds=1,
        default_timeout_seconds=60,
        broker_visibility_timeout_seconds=3600,
    )


def environment_for(settings: Settings) -> dict[str, str]:
    """The process environment that makes a subprocess load exactly ``settings``."""
    return child_environment(settings)


@pytest.fixture
def system_env(system_settings: Settings) -> dict[str, str]:
    return environment_for(system_settings)


@pytest.fixture
def producer(system_settings: Settings) -> Iterator[AssessmentStore]:
    """A store made as a producer service makes it (no dispatcher given): it publishes
    to the test broker after every commit."""
    store = AssessmentStore(system_settings)
    yield store
    store.close()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[list[CeleryProcess]]:
    """Every process a test starts is stopped at the end, whatever happened."""
    started: list[CeleryProcess] = []
    yield started
    stop_all(started)


@pytest.fixture
def start_worker(
    system_env: dict[str, str], tmp_path: Path, processes: list[CeleryProcess]
) -> Callable[..., CeleryProcess]:
    def start(
        name: str = "w1",
        *,
        queues: str = queue_list(),
        concurrency: int = 2,
        env: dict[str, str] | None = None,
    ) -> CeleryProcess:
        process = worker(name, env or system_env, tmp_path, queues=queues, concurrency=concurrency)
        processes.append(process)
        process.start()
        process.wait_ready()
        return process

    return start


@pytest.fixture
def start_beat(
    system_env: dict[str, str], tmp_path: Path, processes: list[CeleryProcess]
) -> Callable[..., CeleryProcess]:
    def start(name: str = "beat1") -> CeleryProcess:
        process = beat(name, system_env, tmp_path)
        processes.append(process)
        process.start()
        process.wait_ready()
        return process

    return start


def wait_for(
    store: AssessmentStore,
    ids: list[str],
    done: Callable[[Assessment], bool],
    timeout: float,
) -> list[Assessment]:
    """Poll until ``done`` holds for every assessment; the final states either way."""
    deadline = time.monotonic() + timeout
    while True:
        states = [store.get_state(i) for i in ids]
        if all(done(s) for s in states) or time.monotonic() > deadline:
            return states
        time.sleep(0.2)
