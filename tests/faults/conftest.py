"""The fault suite's own PostgreSQL and Redis: private servers on free ports, started
once per session, which the tests may stop, restart and flush as they please.

Each test gets a database cloned from a migrated template (with the recording
handler's side table) and a Redis database of its own; a test that left a server
down is followed by one that finds it running again.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ops.chaos.handlers import install_executions_table
from ops.chaos.instances import PrivatePostgres, PrivateRedis
from ops.chaos.system import System, fault_settings
from tests.databases import create_database, create_migrated_template, drop_database, unique_name

TEMPLATE = "fault_template"
REDIS_DATABASES = 16
_redis_db = itertools.count(1)

MakeSystem = Callable[..., System]


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as server:
        url = create_migrated_template(server.url(), TEMPLATE)
        install_executions_table(url)
        yield server


@pytest.fixture(scope="session")
def private_redis() -> Iterator[PrivateRedis]:
    with PrivateRedis() as server:
        yield server


@pytest.fixture
def fault_database(private_postgres: PrivatePostgres) -> Iterator[str]:
    if not private_postgres.running:
        private_postgres.start()
    name = unique_name("fault")
    url = create_database(private_postgres.url(), name, template=TEMPLATE)
    yield url
    if not private_postgres.running:
        private_postgres.start()
    drop_database(private_postgres.url(), name)


@pytest.fixture
def broker_url(private_redis: PrivateRedis) -> str:
    if not private_redis.running:
        private_redis.start()
    db = next(_redis_db) % REDIS_DATABASES
    with private_redis.client(db) as client:
        client.flushdb()
    return private_redis.url(db)


@pytest.fixture
def make_system(fault_database: str, broker_url: str, tmp_path: Path) -> Iterator[MakeSystem]:
    """Build this test's system (fault settings plus overrides); stopped at the end."""
    made: list[System] = []

    def make(*, producer_broker_url: str | None = None, **overrides: object) -> System:
        settings = fault_settings(fault_database, broker_url, **overrides)
        system = System(settings, tmp_path, producer_broker_url=producer_broker_url)
        made.append(system)
        return system

    yield make
    for system in made:
        system.close()
