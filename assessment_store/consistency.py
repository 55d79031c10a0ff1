"""Read-your-writes for the replica: which server answers a list, search, stats or
gauges read.

With ``READ_DATABASE_URL`` set, those reads go to the read replica, except a read
that follows a write by the same caller: it goes to the primary until the replica
has replayed that write or ``READ_YOUR_WRITES_SECONDS`` have passed since the
caller's last write, whichever comes first. Everything else (``get_state``,
waiting, audit trails, every write) always uses the primary.

The same caller is one :class:`~assessment_store.service.AssessmentStore` (its
``Runtime``): every thread of it, unless :func:`acting_as` names another caller for
a block of code. The HTTP API names each request's caller after its token's
subject (``http.dependencies``), so two tokens of one subject are one caller and
every subject is its own. A write is any committed ``Runtime.transact`` or
``Runtime.write_one``.

"Replayed that write": when the caller next reads within the window, the primary's
WAL insert position is taken once (past the caller's commit, which returned
earlier) and compared, on the very replica connection that would serve the read,
with ``pg_last_wal_replay_lsn()``: caught up, the replica answers; behind (or not a
standby at all, so no position to compare), the primary does. Each read in the
window checks again, so several replicas behind one URL are safe too.

Without a replica nothing here runs a query or takes a lock: replica reads are the
primary's (``Engines.replica`` is the reader), and a write records nothing.

A replica that fails (unreachable, restarting, a statement cancelled by a recovery
conflict: any ``OperationalError``) does not fail the read: it is answered by the
primary, the outage is logged once (``replica_unavailable``, then a count), and the
replica is tried again only ``replica_retry_seconds`` later, so an outage costs at
most one connect timeout per interval, never a hang per read.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum
from typing import TypeVar

from prometheus_client import Counter
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from assessment_store.db import replication
from assessment_store.db.engine import Engines, run_read
from assessment_store.outages import OutageLog

T = TypeVar("T")
logger = logging.getLogger("assessment_store.db")
REPLICA_OUTAGES = OutageLog(logger)
# How long a failed replica is left alone (its reads go to the primary).
REPLICA_RETRY_SECONDS = 5.0
# Callers remembered at once; beyond, the expired go, then the oldest.
MAX_TRACKED_CALLERS = 10_000

ROUTED = Counter(
    "assessmentstore_replica_reads_total",
    "Replica reads (lists, searches, stats, gauges) by the server that answered and why",
    ["server", "reason"],
)

# None: the store itself (the Python API's caller is its store instance).
_CALLER: ContextVar[str | None] = ContextVar("assessment_store_caller", default=None)


@contextmanager
def acting_as(caller: str) -> Iterator[None]:
    """Within the block, this context's reads and writes are ``caller``'s: for a
    program that serves several users through one store (as the HTTP API does)."""
    token = _CALLER.set(caller)
    try:
        yield
    finally:
        _CALLER.reset(token)


def bind_caller(caller: str) -> None:
    """Make ``caller`` the caller for the rest of the current context: an HTTP
    request's, set by its authentication dependency (each request runs in a context
    of its own, which its endpoint's thread-pool call copies)."""
    _CALLER.set(caller)


def current_caller() -> str | None:
    return _CALLER.get()


@dataclass(frozen=True)
class _Mark:
    """A caller's last write: when (monotonic), which write, and, once a read needed
    it, the primary's WAL insert position taken after it."""

    at: float
    seq: int
    lsn: int | None = None


class _Skipped(Enum):
    BEHIND = "own_write"  # the replica has not replayed the caller's last write
    DOWN = "replica_unavailable"


class ReadRouter:
    """Serves a store's replica reads (``Runtime.read(..., replica=True)``) and
    remembers its callers' writes (``Runtime`` calls :meth:`wrote` after each)."""

    def __init__(
        self,
        engines: Engines,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engines = engines
        # Without a replica the replica engine is the reader: nothing to decide.
        self.enabled = engines.settings.read_database_url is not None
        self._tracking = self.enabled and window_seconds > 0
        self.window_seconds = window_seconds
        self.replica_retry_seconds = REPLICA_RETRY_SECONDS
        self._clock = clock
        self._marks: dict[str | None, _Mark] = {}
        self._lock = threading.Lock()
        self._sequence = itertools.count()
        self._replica_down_until = 0.0

    def wrote(self) -> None:
        """The current caller has just committed a write."""
        if not self._tracking:
            return
        key = _CALLER.get()
        with self._lock:
            self._marks[key] = _Mark(self._clock(), next(self._sequence))
            if len(self._marks) > MAX_TRACKED_CALLERS:
                self._prune()

    def read(self, query: Callable[[Connection], T]) -> T:
        """``query``'s result from the replica, or from the primary when the replica
        may not hold the current caller's last write or is failing."""
        if not self.enabled:
            return run_read(self._engines.reader, query)
        if self._clock() < self._replica_down_until:
            return self._from_primary(query, _Skipped.DOWN)
        key = _CALLER.get()
        mark = self._recent_mark(key)
        if mark is None:
            served = self._try_replica(query)
        else:
            lsn = mark.lsn if mark.lsn is not None else self._learn_lsn(key, mark)
            served = self._try_replica(_if_replayed(query, lsn))
        if isinstance(served, _Skipped):
            return self._from_primary(query, served)
        ROUTED.labels("replica", "no_recent_write" if mark is None else "caught_up").inc()
        return served

    def tracked_callers(self) -> int:
        """How many callers' writes are remembered (expired ones included until pruned)."""
        return len(self._marks)

    def _from_primary(self, query: Callable[[Connection], T], why: _Skipped) -> T:
        ROUTED.labels("primary", why.value).inc()
        return run_read(self._engines.reader, query)

    def _try_replica(self, query: Callable[[Connection], T | _Skipped]) -> T | _Skipped:
        try:
            result = run_read(self._engines.replica, query)
        except OperationalError as exc:
            self._replica_down_until = self._clock() + self.replica_retry_seconds
            REPLICA_OUTAGES.failed(
                "replica_unavailable",
                exc,
                f"its reads go to the primary; retried every {self.replica_retry_seconds:g}s",
            )
            return _Skipped.DOWN
        REPLICA_OUTAGES.succeeded("replica_unavailable")
        return result

    def _recent_mark(self, key: str | None) -> _Mark | None:
        mark = self._marks.get(key)
        if mark is None or self._clock() - mark.at <= self.window_seconds:
            return mark
        with self._lock:
            if self._marks.get(key) is mark:
                del self._marks[key]
        return None

    def _learn_lsn(self, key: str | None, mark: _Mark) -> int:
        """The primary's position now, past ``mark``'s write; kept for the next reads
        unless the caller has written again meanwhile."""
        lsn = run_read(self._engines.reader, replication.insert_lsn)
        with self._lock:
            current = self._marks.get(key)
            if current is not None and current.seq == mark.seq:
                self._marks[key] = _Mark(mark.at, mark.seq, lsn)
        return lsn

    def _prune(self) -> None:
        """Under the lock: drop expired marks, then the oldest beyond the limit."""
        horizon = self._clock() - self.window_seconds
        for key in [k for k, m in self._marks.items() if m.at < horizon]:
            del self._marks[key]
        excess = len(self._marks) - MAX_TRACKED_CALLERS
        if excess > 0:
            oldest = sorted(self._marks, key=lambda k: self._marks[k].at)[:excess]
            for key in oldest:
                del self._marks[key]


def _if_replayed(
    query: Callable[[Connection], T], lsn: int
) -> Callable[[Connection], T | _Skipped]:
    """``query`` on a replica connection that has replayed up to ``lsn``; else BEHIND
    (without running it)."""

    def guarded(conn: Connection) -> T | _Skipped:
        replayed = replication.replay_lsn(conn)
        if replayed is None or replayed < lsn:
            return _Skipped.BEHIND
        return query(conn)

    return guarded
