"""Benchmark plumbing: a throwaway migrated database and simple statistics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, make_url, pool, text

from assessment_store.config import get_settings
from assessment_store.db.migrate import upgrade


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
