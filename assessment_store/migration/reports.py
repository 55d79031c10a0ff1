"""Each facade's background duty: keep the settings fresh and report its legacy side.

Every ``interval`` seconds a daemon thread re-reads the overrides (so a change is
logged, and in force, promptly even in an idle process) and, once the legacy backend
has held anything, upserts its counts into ``migration_legacy_reports`` for the other
processes' ``migration status``. Closing deletes the report. Failures are logged once
per outage and never stop the thread.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from sqlalchemy import Connection, RowMapping

from assessment_store.bootstrap import Runtime
from assessment_store.db import migration as sql
from assessment_store.migration.legacy import LegacyBackend
from assessment_store.migration.overrides import OverrideCache
from assessment_store.outages import OutageLog

logger = logging.getLogger("assessment_store.migration")
REPORT_OUTAGES = OutageLog(logger)


class LegacyReporter:
    """The background thread (see the module docstring)."""

    def __init__(self, runtime: Runtime, backend: LegacyBackend, overrides: OverrideCache) -> None:
        self.reporter_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._runtime = runtime
        self._backend = backend
        self._overrides = overrides
        self._interval = overrides.refresh_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported = False

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="migration-reporter", daemon=True
            )
            self._thread.start()

    def tick(self) -> None:
        """Refresh the settings; report the legacy counts if there is anything to say."""
        self._overrides.current()
        counts = self._backend.counts()
        if not counts.held and not self._reported:
            return
        self._runtime.transact(
            lambda conn: sql.upsert_legacy_report(
                conn,
                reporter=self.reporter_id,
                backend=self._backend.name,
                held=counts.held,
                in_flight=counts.in_flight,
                by_state=counts.by_state,
            )
        )
        self._reported = True

    def others(self) -> list[RowMapping]:
        """The other processes' reports."""

        def query(conn: Connection) -> list[RowMapping]:
            return [r for r in sql.fetch_legacy_reports(conn) if r["reporter"] != self.reporter_id]

        return self._runtime.read(query)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(self._interval + 5)
        if self._reported:
            try:
                self._runtime.transact(
                    lambda conn: sql.delete_legacy_report(conn, self.reporter_id)
                )
            except Exception as exc:
                logger.warning("legacy_report_not_removed: %s (it goes stale)", exc)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.tick()
            except Exception as exc:
                REPORT_OUTAGES.failed("legacy_report_failed", exc)
            else:
                REPORT_OUTAGES.succeeded("legacy_report_failed")
