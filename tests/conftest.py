"""Shared fixtures: real PostgreSQL and Redis, or the run fails (never a silent skip)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import Connection, Engine, create_engine, pool, text

from assessment_store.config import Settings, load_settings
from assessment_store.service import AssessmentStore
from tests.databases import (
    ClonePool,
    create_database,
    create_migrated_template,
    drop_database,
    unique_name,
)
from tests.factories import quiet_store

TEMPLATE_NAME = f"assessment_store_test_template_{os.getpid()}"


def _base_settings() -> Settings:
    return load_settings()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to run without the real services: a missing one fails the whole run."""
    settings = _base_settings()
    problems = []
    engine = create_engine(
        settings.database_url, poolclass=pool.NullPool, connect_args={"connect_timeout": 5}
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        if "does not exist" not in str(exc):  # the server answers; the db is made per test
            problems.append(f"PostgreSQL at {settings.database_url}: {exc}")
    finally:
        engine.dispose()
    try:
        redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5).ping()
    except Exception as exc:
        problems.append(f"Redis at {settings.redis_url}: {exc}")
    if problems:
        pytest.exit(
            "required services are unreachable (ops/test.sh starts private ones):\n  "
            + "\n  ".join(problems),
            returncode=3,
        )


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return _base_settings()


@pytest.fixture(scope="session")
def template_database(base_settings: Settings) -> Iterator[str]:
    """The migrated template every test database is cloned from."""
    create_migrated_template(base_settings.database_url, TEMPLATE_NAME)
    yield TEMPLATE_NAME
    drop_database(base_settings.database_url, TEMPLATE_NAME)


@pytest.fixture(scope="session")
def clone_pool(base_settings: Settings, template_database: str) -> Iterator[ClonePool]:
    """Clones of the template, made ahead while other tests run."""
    clones = ClonePool(base_settings.database_url, template_database, "assessment_store_test")
    yield clones
    clones.close()


# Suites whose tests run workers and servers for seconds: a clone made in the
# background there competes with their own writes for the disk (its checkpoint), so
# they clone when they start, as before.
CLONE_IN_PLACE = ("acceptance", "browser", "faults", "replica")


@pytest.fixture
def database_url(
    request: pytest.FixtureRequest,
    clone_pool: ClonePool,
    base_settings: Settings,
    template_database: str,
) -> Iterator[str]:
    """A private, migrated database for one test."""
    if any(part in CLONE_IN_PLACE for part in request.node.path.parts):
        name = unique_name("assessment_store_test")
        url = create_database(base_settings.database_url, name, template=template_database)
        yield url
        drop_database(base_settings.database_url, name)
        return
    url = clone_pool.take()
    yield url
    clone_pool.give_back(url)


@pytest.fixture
def empty_database_url(base_settings: Settings) -> Iterator[str]:
    """A private database with no schema at all."""
    name = unique_name("assessment_store_empty")
    url = create_database(base_settings.database_url, name)
    yield url
    drop_database(base_settings.database_url, name)


@pytest.fixture
def settings(database_url: str, base_settings: Settings) -> Settings:
    """Settings pointing at this test's database, with short, test-friendly tunables."""
    return load_settings(
        database_url=database_url,
        redis_url=base_settings.redis_url,
        retry_backoff_seconds=1.0,
        retry_backoff_max_seconds=8.0,
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[AssessmentStore]:
    service = quiet_store(settings)
    yield service
    service.close()


@pytest.fixture
def raw_engine(database_url: str) -> Iterator[Engine]:
    """An engine for direct SQL against this test's database (bypassing the store)."""
    engine = create_engine(database_url, poolclass=pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def raw_conn(raw_engine: Engine) -> Iterator[Connection]:
    with raw_engine.connect() as conn:
        yield conn
