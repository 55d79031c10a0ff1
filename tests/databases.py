"""Test databases: one migrated template per run, one clone of it per test.

Cloning a template (``CREATE DATABASE t TEMPLATE tpl``) costs a fraction of running
the migrations again, so every test gets a private, fully migrated database.
"""

from __future__ import annotations

import queue
import threading
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


class ClonePool:
    """Clones of the template made ahead of need, and dropped after use, by a thread
    of its own: a clone waits on a checkpoint (half a second here), which the test
    running meanwhile hides. Each test still gets a fresh clone nobody used before."""

    def __init__(self, base_url: str, template: str, prefix: str, ahead: int = 2) -> None:
        self._base_url = base_url
        self._template = template
        self._prefix = prefix
        self._jobs: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._ready: queue.Queue[str | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="clone-pool", daemon=True)
        self._thread.start()
        for _ in range(ahead):
            self._jobs.put(("create", unique_name(prefix)))

    def take(self) -> str:
        """A fresh clone's URL (one more is started for the next test)."""
        self._jobs.put(("create", unique_name(self._prefix)))
        made = self._ready.get(timeout=120)
        if isinstance(made, BaseException):
            raise made
        return url_for(self._base_url, made)

    def give_back(self, url: str) -> None:
        """Drop a used clone (in the background)."""
        name = make_url(url).database
        assert name is not None
        self._jobs.put(("drop", name))

    def close(self) -> None:
        """Drop every clone made ahead and not taken, then stop."""
        self._jobs.put(None)
        self._thread.join(timeout=120)
        while not self._ready.empty():
            made = self._ready.get_nowait()
            if isinstance(made, str):
                drop_database(self._base_url, made)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            action, name = job
            try:
                if action == "create":
                    create_database(self._base_url, name, template=self._template)
                    self._ready.put(name)
                else:
                    drop_database(self._base_url, name)
            except Exception as exc:  # handed to the test that takes this clone
                if action == "create":
                    self._ready.put(exc)
