"""The composition root: the one place the store's parts are made and wired together.

``AssessmentStore(...)`` asks :func:`assemble` for its :class:`Runtime`; the HTTP app,
the CLI, the demo, workers and benchmarks all get their store that way. Defaults:
settings from the environment, engines made lazily per process, the Celery
publisher (a store made without an explicit dispatcher publishes every assessment
after its commit), the handlers of ``ASSESSMENT_STORE_HANDLERS``, and the Redis read
cache when ``CACHE_ENABLED``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from assessment_store.cache import StateCache
from assessment_store.config import Settings, get_settings
from assessment_store.consistency import ReadRouter
from assessment_store.db import sweeps
from assessment_store.db.engine import Engines, run_read
from assessment_store.db.errors import translated_db_errors
from assessment_store.dispatch import Dispatcher, DispatchItem
from assessment_store.encryption import KeyRing
from assessment_store.handlers.registry import HandlerRegistry
from assessment_store.lease import LeaseKeeper
from assessment_store.notify import StateNotifier
from assessment_store.outages import OutageLog
from assessment_store.publishing import CeleryDispatcher

logger = logging.getLogger("assessment_store.service")
# The broker down makes every create fail to publish: news once, then a count.
DISPATCH_OUTAGES = OutageLog(logger)
PUBLISH_PAUSE_SECONDS = 5.0
T = TypeVar("T")


class Runtime:
    """A store's parts and the plumbing every use case shares: transactions, reads,
    publishing after commit, the LISTEN connection, the cache."""

    def __init__(
        self,
        settings: Settings,
        engines: Engines,
        dispatcher: Dispatcher,
        handlers: HandlerRegistry,
        cache: StateCache | None,
        keys: KeyRing | None = None,
    ) -> None:
        self.settings = settings
        # ENCRYPTION_KEYS' ring, None while encryption is off (see at_rest).
        self.keys = keys
        self.engines = engines
        # Which server answers replica reads: read-your-writes (see consistency).
        self.reads = ReadRouter(engines, settings.read_your_writes_seconds)
        self.dispatcher = dispatcher
        self.handlers = handlers
        self.cache = cache
        self._notifier: StateNotifier | None = None
        self._notifier_lock = threading.Lock()
        self.leases = LeaseKeeper(self._renew_lease, settings.lease_seconds)
        # (until when, why): set by a failed publish, see publish().
        self._publish_paused: tuple[float, Exception] | None = None

    def _renew_lease(self, assessment_id: str, worker_id: str) -> bool:
        seconds = self.settings.lease_seconds
        return self.write_one(
            lambda conn: sweeps.renew_lease(conn, assessment_id, worker_id, seconds)
        )

    def transact(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in one transaction on the primary and commit; database errors
        translated to domain errors.

        Connections are not pinged before use (a round trip per transaction): if the
        pooled connection turns out dead (PostgreSQL restarted) while ``work`` runs,
        the transaction never committed (the server rolled it back with the
        connection), so it is run once more on a fresh one. A failure at commit is
        never retried: its outcome is unknown.
        """
        with translated_db_errors():
            for attempt in (1, 2):
                with self.engines.primary.connect() as conn:
                    transaction = conn.begin()
                    try:
                        result = work(conn)
                    except DBAPIError as exc:
                        transaction.rollback()
                        if exc.connection_invalidated and attempt == 1:
                            logger.info("transaction_retried: the connection had died")
                            continue
                        raise
                    except BaseException:
                        transaction.rollback()
                        raise
                    transaction.commit()
                    self.reads.wrote()
                    return result
        raise AssertionError("unreachable")  # pragma: no cover

    def write_one(self, work: Callable[[Connection], T]) -> T:
        """Run ``work``, which issues exactly one write statement (and, only when that
        statement changed nothing, reads to explain why), on an autocommit connection
        to the primary: the statement is its own transaction, one round trip instead
        of three (BEGIN, statement, COMMIT).

        Every statement run here is guarded by a compare-and-set, so running it once
        more on a fresh connection when the pooled one turns out dead is harmless:
        had the first reached the server and committed, its guard no longer matches
        and the second changes nothing (the caller is told it was refused, as it is
        when a commit's outcome is unknown).
        """
        with translated_db_errors():
            result = run_read(self.engines.reader, work)
        self.reads.wrote()
        return result

    def read(self, query: Callable[[Connection], T], *, replica: bool = False) -> T:
        """A read-only query, database errors translated: on the primary, or with
        ``replica`` (lists, searches, stats, gauges) on the read replica unless this
        caller's last write may not have reached it yet (see consistency)."""
        with translated_db_errors():
            if replica:
                return self.reads.read(query)
            return run_read(self.engines.reader, query)

    def publish(self, items: Sequence[DispatchItem]) -> None:
        """Ring the doorbell after commit; a failure only delays (re-dispatch sweeps).

        After a failed publish, publishing pauses for PUBLISH_PAUSE_SECONDS: with the
        broker down, each create would otherwise wait out the broker's connect
        timeout and retry (seconds per call). The rows are the promise; beat's
        re-dispatch publishes what a pause skipped once the broker is back."""
        if not items:
            return
        context = f"{len(items)} assessment(s) stay pending until re-dispatch"
        paused = self._publish_paused
        if paused is not None and time.monotonic() < paused[0]:
            DISPATCH_OUTAGES.failed("dispatch_failed", paused[1], context + ", publishing paused")
            return
        try:
            self.dispatcher.dispatch(items)
        except Exception as exc:
            self._publish_paused = (time.monotonic() + PUBLISH_PAUSE_SECONDS, exc)
            DISPATCH_OUTAGES.failed("dispatch_failed", exc, context)
        else:
            self._publish_paused = None
            DISPATCH_OUTAGES.succeeded("dispatch_failed")

    @property
    def notifier(self) -> StateNotifier:
        """This process's LISTEN connection for push-based waiting (started on first use)."""
        with self._notifier_lock:
            if self._notifier is None:
                self._notifier = StateNotifier(self.settings.database_url)
            return self._notifier

    def close(self) -> None:
        """Release this process's connections: database, LISTEN, broker, cache."""
        self.leases.close()
        with self._notifier_lock:
            if self._notifier is not None:
                self._notifier.close()
                self._notifier = None
        if self.cache is not None:
            self.cache.close()
        self.dispatcher.close()
        self.engines.dispose()


def assemble(
    settings: Settings | None = None,
    *,
    engines: Engines | None = None,
    dispatcher: Dispatcher | None = None,
    handlers: HandlerRegistry | None = None,
    application_name: str = "assessment-store",
) -> Runtime:
    """A store's runtime; anything not given is made from ``settings`` (the
    environment's by default). ``application_name`` labels the database connections
    (pg_stat_activity)."""
    settings = settings or get_settings()
    cache = (
        StateCache(settings.redis_url, settings.cache_ttl_seconds, settings.retention_days)
        if settings.cache_enabled
        else None
    )
    return Runtime(
        settings=settings,
        engines=engines or Engines(settings, application_name=application_name),
        dispatcher=dispatcher or CeleryDispatcher(settings),
        handlers=handlers or HandlerRegistry.from_setting(settings.handlers),
        cache=cache,
        keys=(
            KeyRing.from_setting(settings.encryption_keys)
            if settings.encryption_keys is not None
            else None
        ),
    )
