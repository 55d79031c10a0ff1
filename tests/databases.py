"""Test databases: one migrated template per run, one clone of it per test.

Cloning a template (``CREATE DATABASE t TEMPLATE tpl``) costs a fraction of running
the migrations again, so every test gets a private, fully migrated database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, make_url, pool, text
from sqlalchemy.engine import URL

from assessment_store.db.migrate import upgrade


def url_for(base_url: str, database: str) -> str:
    """``base_url`` with another database name."""
    url: URL = make_url(base_url).set(database=database)
    return url.render_as_string(hide_password=False)


@contextmanager
def admin_connection(base_url: str) -> Iterator[object]:
    """An autocommit connection to the server's ``postgres`` database."""
    engine = create_engine(
        url_for(base_url, "postgres"), poolclass=pool.NullPool, isolation_level="AUTOCOMMIT"
    )
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def drop_database(base_url: str, name: str) -> None:
    with admin_connection(base_url) as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))  # type: ignore[attr-defined]


def create_database(base_url: str, name: str, template: str | None = None) -> str:
    """Create ``name`` (from ``template`` when given) and return its URL."""
    clause = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
    with admin_connection(base_url) as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))  # type: ignore[attr-defined]
        conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))  # type: ignore[attr-defined]
    return url_for(base_url, name)


def create_migrated_template(base_url: str, name: str) -> str:
    """A fresh database at ``alembic upgrade head``, to clone per test."""
    url = create_database(base_url, name)
    upgrade(url)
    return url


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
