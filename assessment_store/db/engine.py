"""Engines, created lazily and once per process.

A forked child (a prefork Celery worker) must not reuse its parent's connections, so
the engines remember the pid that made them and are rebuilt after a fork.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import DBAPIError

from assessment_store.config import Settings

T = TypeVar("T")
logger = logging.getLogger("assessment_store.db")


def make_engine(
    url: str, settings: Settings, *, application_name: str, autocommit: bool = False
) -> Engine:
    """A pooled engine with the settings' pool size and connection hygiene.

    No engine pings a connection before lending it (that is a round trip per use):
    a transaction that meets a connection that died with a PostgreSQL restart is run
    again on a fresh one (``bootstrap.Runtime.transact``), and so is a read
    (``run_read``). Autocommit engines serve single-statement reads: no BEGIN, no
    ROLLBACK on return, one round trip a read.
    """
    extra: dict[str, object] = (
        {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None} if autocommit else {}
    )
    return create_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_recycle=1800,
        pool_pre_ping=False,
        **extra,
        connect_args={
            "application_name": application_name,
            "connect_timeout": 5,
            # Keep a stuck statement from holding a worker forever.
            "options": "-c timezone=UTC -c statement_timeout=60000 -c lock_timeout=10000",
        },
    )


@dataclass
class Engines:
    """Per-process engines: ``primary`` for transactions, ``reader`` for single reads on
    the primary (a caller sees its own writes), ``replica`` for lists and stats (the
    read replica when configured, else the reader)."""

    settings: Settings
    application_name: str = "assessment-store"
    _pid: int = field(default=-1, init=False)
    _primary: Engine | None = field(default=None, init=False)
    _reader: Engine | None = field(default=None, init=False)
    _replica: Engine | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def _all(self) -> list[Engine]:
        unique = {id(e): e for e in (self._primary, self._reader, self._replica) if e is not None}
        return list(unique.values())

    def _ensure(self) -> None:
        if self._pid == os.getpid() and self._primary is not None:
            return
        with self._lock:
            if self._pid == os.getpid() and self._primary is not None:
                return
            for engine in self._all():
                # Inherited across fork: drop the parent's pooled connections without
                # closing them (closing would tear down the parent's sockets).
                engine.dispose(close=False)
            name = self.application_name
            self._primary = make_engine(
                self.settings.database_url, self.settings, application_name=name
            )
            self._reader = make_engine(
                self.settings.database_url,
                self.settings,
                application_name=f"{name}-reader",
                autocommit=True,
            )
            self._replica = (
                make_engine(
                    self.settings.read_database_url,
                    self.settings,
                    application_name=f"{name}-replica",
                    autocommit=True,
                )
                if self.settings.read_database_url
                else self._reader
            )
            self._pid = os.getpid()

    @property
    def primary(self) -> Engine:
        self._ensure()
        assert self._primary is not None
        return self._primary

    @property
    def reader(self) -> Engine:
        self._ensure()
        assert self._reader is not None
        return self._reader

    @property
    def replica(self) -> Engine:
        self._ensure()
        assert self._replica is not None
        return self._replica

    def dispose(self) -> None:
        """Close every pooled connection of this process."""
        with self._lock:
            for engine in self._all():
                engine.dispose()
            self._primary = self._reader = self._replica = None
            self._pid = -1


def run_read(engine: Engine, query: Callable[[Connection], T]) -> T:
    """Run ``query`` on an autocommit connection; once more on a fresh connection if
    the first one was dead (PostgreSQL restarted since it was pooled). Safe because
    it is a read, or a single guarded write (``Runtime.write_one``)."""
    try:
        with engine.connect() as conn:
            return query(conn)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    logger.info("statement_retried: the connection had died")
    with engine.connect() as conn:
        return query(conn)
