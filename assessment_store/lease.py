"""Keeping running attempts' leases alive: one heartbeat thread per process.

A claim takes a lease of ``LEASE_SECONDS`` in the same statement. While the attempt
runs, the process's :class:`LeaseKeeper` renews it every third of ``LEASE_SECONDS``;
if the process dies or hangs, renewals stop, the lease expires, and the rescue job
fails the attempt as lost so that it is retried. Renewing touches only
``assessment_leases``: the assessment's version and audit trail are not disturbed.

The thread is started once, on the first attempt, and serves every attempt of the
process after it: an attempt costs a dictionary entry, not a thread start and join
(which cost more than a no-op handler's whole attempt).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from types import TracebackType

from assessment_store.outages import OutageLog

logger = logging.getLogger("assessment_store.lease")
RENEWAL_OUTAGES = OutageLog(logger)

Renew = Callable[[str, str], bool]  # (assessment_id, worker_id) -> still held?


class Lease:
    """One running attempt's lease, held while the ``with`` block runs; ``lost`` turns
    True once a renewal found that the attempt no longer holds it (it was rescued).
    A plain flag, written by the keeper's thread and read by the attempt's: an
    attribute assignment is atomic, and an Event per attempt costs a lock's making."""

    def __init__(self, keeper: LeaseKeeper, assessment_id: str, worker_id: str) -> None:
        self.keeper = keeper
        self.assessment_id = assessment_id
        self.worker_id = worker_id
        self.lost = False
        self.renewed_at = time.monotonic()  # the claim took it just now

    def __enter__(self) -> Lease:
        self.keeper._add(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.keeper._remove(self)


class LeaseKeeper:
    """Renews the lease of every attempt held in this process, from one daemon thread."""

    def __init__(self, renew: Renew, lease_seconds: float) -> None:
        self._renew = renew
        self._interval = lease_seconds / 3
        self._held: set[Lease] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._pid = -1

    def hold(self, assessment_id: str, worker_id: str) -> Lease:
        """The lease an attempt just took at its claim, renewed until the block ends."""
        return Lease(self, assessment_id, worker_id)

    @property
    def held_count(self) -> int:
        with self._lock:
            return len(self._held)

    def _add(self, lease: Lease) -> None:
        with self._lock:
            self._held.add(lease)
            if self._thread is None or self._pid != os.getpid():
                # First attempt (or first after a fork, which keeps no threads).
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="lease-keeper", daemon=True)
                self._thread.start()

    def _remove(self, lease: Lease) -> None:
        with self._lock:
            self._held.discard(lease)

    def close(self) -> None:
        """Stop renewing (the process is shutting down)."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        self._wake.set()
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            thread.join(timeout=5)

    def _due(self) -> list[Lease]:
        now = time.monotonic()
        with self._lock:
            return [lease for lease in self._held if now - lease.renewed_at >= self._interval]

    def _run(self) -> None:
        # Wake often enough that no lease waits much past a third of its time.
        tick = min(1.0, self._interval / 4)
        while not self._wake.wait(tick):
            for lease in self._due():
                if self._closed:
                    return
                self._renew_one(lease)

    def _renew_one(self, lease: Lease) -> None:
        try:
            held = self._renew(lease.assessment_id, lease.worker_id)
        except Exception as exc:
            # A database blip: try again next tick; the lease has slack for two misses.
            RENEWAL_OUTAGES.failed("lease_renewal_failed", exc, lease.assessment_id)
            return
        RENEWAL_OUTAGES.succeeded("lease_renewal_failed")
        lease.renewed_at = time.monotonic()
        if not held:
            lease.lost = True
            self._remove(lease)
