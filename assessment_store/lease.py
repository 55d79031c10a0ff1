"""The heartbeat that keeps a running attempt's lease alive.

A thread renews the lease every third of ``LEASE_SECONDS``; if the process dies or
hangs, renewals stop, the lease expires, and the rescue job fails the attempt as lost
so it can be retried. Renewing touches only ``assessment_leases``: the assessment's
version and audit trail are not disturbed by heartbeats.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

logger = logging.getLogger("assessment_store.lease")


class Heartbeat:
    """Calls ``renew`` (True while the lease is still ours) from a daemon thread every
    ``lease_seconds / 3`` until stopped, or until the lease is lost."""

    def __init__(self, name: str, renew: Callable[[], bool], lease_seconds: float) -> None:
        self._renew = renew
        self._lease_seconds = lease_seconds
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{name}", daemon=True)

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
                held = self._renew()
            except Exception:
                # A database blip: keep trying; the lease has slack for two misses.
                logger.warning("lease_renewal_failed: %s", self._thread.name, exc_info=True)
                continue
            if not held:
                self.lost.set()
                return
