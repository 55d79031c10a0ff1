"""The heartbeat that keeps a running attempt's lease alive.

A thread renews the lease every third of ``LEASE_SECONDS``; if the process dies or
hangs, renewals stop, the lease expires, and the rescue job fails the attempt as lost
so it can be retried. Renewing touches only ``assessment_leases``: the assessment's
version and audit trail are not disturbed by heartbeats.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from sqlalchemy import Engine

from assessment_store.db import sweeps

logger = logging.getLogger("assessment_store.lease")


class Heartbeat:
    """Renews one attempt's lease from a daemon thread until stopped or lost."""

    def __init__(
        self, engine: Engine, assessment_id: str, worker_id: str, lease_seconds: float
    ) -> None:
        self._engine = engine
        self._assessment_id = assessment_id
        self._worker_id = worker_id
        self._lease_seconds = lease_seconds
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{assessment_id}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        interval = self._lease_seconds / 3
        while not self._stop.wait(interval):
            try:
                with self._engine.begin() as conn:
                    held = sweeps.renew_lease(
                        conn, self._assessment_id, self._worker_id, self._lease_seconds
                    )
            except Exception:
                # A database blip: keep trying; the lease has slack for two misses.
                logger.warning("lease_renewal_failed: %s", self._assessment_id, exc_info=True)
                continue
            if not held:
                self.lost.set()
                return
