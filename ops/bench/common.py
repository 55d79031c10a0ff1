"""Benchmark plumbing: a throwaway migrated database and simple statistics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, make_url, pool, text

from assessment_store.config import get_settings
from assessment_store.db.migrate import upgrade
from assessment_store.notify import libpq_dsn


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh database at ``alembic upgrade head``, dropped afterwards."""
    base = make_url(get_settings().database_url)
    name = f"assessment_store_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        base.set(database="postgres"), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def libpq(url: str) -> str:
    """The libpq connection string of a SQLAlchemy URL (for psycopg and procrastinate)."""
    return libpq_dsn(url)


def redis_db_url(url: str, db: int) -> str:
    """``url`` pointing at Redis database ``db``: each benchmarked system gets its own."""
    base, _, last = url.rstrip("/").rpartition("/")
    return f"{base}/{db}" if last.isdigit() else f"{url.rstrip('/')}/{db}"
