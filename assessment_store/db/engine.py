"""Engines, created lazily and once per process.

A forked child (a prefork Celery worker) must not reuse its parent's connections, so
the engines remember the pid that made them and are rebuilt after a fork.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from sqlalchemy import Engine, create_engine

from assessment_store.config import Settings


def make_engine(url: str, settings: Settings, *, application_name: str) -> Engine:
    """A pooled engine with the settings' pool size and connection hygiene."""
    return create_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={
            "application_name": application_name,
            "connect_timeout": 5,
            # Keep a stuck statement from holding a worker forever.
            "options": "-c timezone=UTC -c statement_timeout=60000 -c lock_timeout=10000",
        },
    )


@dataclass
class Engines:
    """The primary (writes, reads that must be fresh) and read (lists, stats) engines."""

    settings: Settings
    application_name: str = "assessment-store"
    _pid: int = field(default=-1, init=False)
    _primary: Engine | None = field(default=None, init=False)
    _read: Engine | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def _ensure(self) -> None:
        if self._pid == os.getpid() and self._primary is not None:
            return
        with self._lock:
            if self._pid == os.getpid() and self._primary is not None:
                return
            if self._primary is not None:
                # Inherited across fork: drop the parent's pooled connections without
                # closing them (closing would tear down the parent's sockets).
                self._primary.dispose(close=False)
                if self._read is not None and self._read is not self._primary:
                    self._read.dispose(close=False)
            self._primary = make_engine(
                self.settings.database_url, self.settings, application_name=self.application_name
            )
            if self.settings.read_database_url:
                self._read = make_engine(
                    self.settings.read_database_url,
                    self.settings,
                    application_name=f"{self.application_name}-read",
                )
            else:
                self._read = self._primary
            self._pid = os.getpid()

    @property
    def primary(self) -> Engine:
        self._ensure()
        assert self._primary is not None
        return self._primary

    @property
    def read(self) -> Engine:
        self._ensure()
        assert self._read is not None
        return self._read

    def dispose(self) -> None:
        """Close every pooled connection of this process."""
        with self._lock:
            if self._primary is not None:
                self._primary.dispose()
            if self._read is not None and self._read is not self._primary:
                self._read.dispose()
            self._primary = None
            self._read = None
            self._pid = -1
