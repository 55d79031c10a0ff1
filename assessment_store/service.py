"""The store's use cases: create, read, wait, subscribe, and (from ``changes``) change.

:class:`AssessmentStore` owns transactions; the repository owns SQL; the state machine
owns the rules. Creation commits the rows, then publishes them; every change of an
assessment goes through ``AssessmentChanges._transition`` (see ``changes``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, RowMapping

from assessment_store import creation, health, metrics, queries
from assessment_store.cache import StateCache
from assessment_store.changes import SYSTEM_ACTOR, AssessmentChanges, to_assessment
from assessment_store.config import Settings, get_settings
from assessment_store.db import repository
from assessment_store.db.engine import Engines, run_read
from assessment_store.db.errors import translated_db_errors
from assessment_store.dispatch import Dispatcher, DispatchItem, NullDispatcher
from assessment_store.errors import (
    AssessmentNotFoundError,
    AssessmentTimeoutError,
)
from assessment_store.events import EventHandler, Subscription, subscribe_to_audit
from assessment_store.handlers.registry import HandlerRegistry
from assessment_store.inputs import (
    InvalidInputError,
    check_count,
    check_lookup_id,
    check_positive,
    check_text,
)
from assessment_store.models import (
    Assessment,
    AssessmentFilters,
    AssessmentPage,
    AssessmentRequest,
    AssessmentStats,
    AuditEntry,
    HealthStatus,
)
from assessment_store.notify import StateNotifier, wait_until

logger = logging.getLogger("assessment_store.service")

# A waiter re-reads the row this often even without a notification.
WAIT_RECHECK_SECONDS = 5.0

T = TypeVar("T")
ValuesFor = Callable[[RowMapping], Mapping[str, object]]
ProgressCallback = Callable[[int], None]


class AssessmentStore(AssessmentChanges):
    """The durable assessment store (SPEC section 5)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        engines: Engines | None = None,
        dispatcher: Dispatcher | None = None,
        handlers: HandlerRegistry | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.engines = engines or Engines(self.settings)
        self.dispatcher: Dispatcher = dispatcher or NullDispatcher()
        self.handlers = handlers or HandlerRegistry.from_setting(self.settings.handlers)
        self._notifier: StateNotifier | None = None
        self._notifier_lock = threading.Lock()
        self.cache = (
            StateCache(
                self.settings.redis_url,
                self.settings.cache_ttl_seconds,
                self.settings.retention_days,
            )
            if self.settings.cache_enabled
            else None
        )

    # -- plumbing ---------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction on the primary, database errors translated to domain errors."""
        with translated_db_errors(), self.engines.primary.begin() as conn:
            yield conn

    def _read(self, query: Callable[[Connection], T], *, replica: bool = False) -> T:
        """A single-statement read: on the primary (read-your-writes) or the replica."""
        engine = self.engines.replica if replica else self.engines.reader
        with translated_db_errors():
            return run_read(engine, query)

    def publish(self, items: Sequence[DispatchItem]) -> None:
        """Ring the doorbell after commit; a failure only delays (re-dispatch sweeps)."""
        if not items:
            return
        try:
            self.dispatcher.dispatch(items)
        except Exception:
            logger.warning(
                "dispatch_failed: %d assessment(s) stay pending until re-dispatch",
                len(items),
                exc_info=True,
            )

    def dispatch_item(self, row: RowMapping) -> DispatchItem:
        """What to publish for a stored pending row."""
        request = AssessmentRequest.model_validate(row["request_data"])
        return DispatchItem(
            row["assessment_id"],
            row["priority"],
            request.attempt_timeout_seconds(self.settings.default_timeout_seconds),
        )

    def close(self) -> None:
        """Release this process's database connections (and the LISTEN connection)."""
        if self._notifier is not None:
            self._notifier.close()
            self._notifier = None
        if self.cache is not None:
            self.cache.close()
        self.engines.dispose()

    def __enter__(self) -> AssessmentStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- creation ---------------------------------------------------------------

    def create_assessment(
        self, request: AssessmentRequest | Mapping[str, Any], *, created_by: str = SYSTEM_ACTOR
    ) -> str:
        """Store a new pending assessment and publish it; returns its id.

        With a client-supplied ``id`` the call is idempotent: repeating the same request
        returns the same id; a different request under that id is AssessmentConflictError.
        """
        return self.batch_create_assessments([request], created_by=created_by)[0]

    def batch_create_assessments(
        self,
        requests: Sequence[AssessmentRequest | Mapping[str, Any]],
        *,
        created_by: str = SYSTEM_ACTOR,
    ) -> list[str]:
        """Create many assessments in one transaction (all or none); ids in input order."""
        parsed = [
            r if isinstance(r, AssessmentRequest) else AssessmentRequest.model_validate(r)
            for r in requests
        ]
        check_text("createdBy", created_by, max_chars=255, required=True)
        self._check_timeouts(parsed)
        rows = creation.new_rows(parsed, created_by, self.handlers)
        if not rows:
            return []
        requests_by_id = {row.assessment_id: req for row, req in zip(rows, parsed, strict=True)}
        unique_rows = list({row.assessment_id: row for row in rows}.values())
        with self.transaction() as conn:
            inserted = repository.insert_assessments(conn, unique_rows)
            repeated = [row for row in unique_rows if row.assessment_id not in inserted]
            if repeated:
                creation.check_idempotent_repeats(conn, repeated)
        if self.cache is not None:
            self.cache.forget(sorted(inserted))  # an older incarnation of a reused id
        for row in unique_rows:
            if row.assessment_id in inserted:
                metrics.CREATED.labels(row.assessment_type).inc()
        default_timeout = self.settings.default_timeout_seconds
        self.publish(
            [
                DispatchItem(
                    row.assessment_id,
                    row.priority,
                    requests_by_id[row.assessment_id].attempt_timeout_seconds(default_timeout),
                )
                for row in unique_rows
                if row.assessment_id in inserted
            ]
        )
        return [row.assessment_id for row in rows]

    def _check_timeouts(self, requests: Sequence[AssessmentRequest]) -> None:
        """An attempt must end before the broker would deliver its message again."""
        limit = self.settings.broker_visibility_timeout_seconds
        for request in requests:
            seconds = request.attempt_timeout_seconds(self.settings.default_timeout_seconds)
            if seconds >= limit:
                raise InvalidInputError(
                    "timeout",
                    f"must be below the broker's visibility timeout ({limit:g}s, "
                    "ASSESSMENT_STORE_BROKER_VISIBILITY_TIMEOUT_SECONDS)",
                    seconds,
                )

    # -- reading ----------------------------------------------------------------

    def get_state(self, assessment_id: str, *, owner: str | None = None) -> Assessment:
        """The current state; ``owner`` limits the lookup to that creator's assessments.

        With the cache enabled, may be up to CACHE_TTL_SECONDS old for assessments that
        are not completed or cancelled (see assessment_store/cache.py)."""
        assessment_id = check_lookup_id(assessment_id)
        if self.cache is not None:
            cached = self.cache.get(assessment_id)
            if cached is not None:
                if owner is not None and cached.created_by != owner:
                    raise AssessmentNotFoundError(assessment_id)
                return cached
        current = self.get_fresh_state(assessment_id, owner=owner)
        if self.cache is not None:
            self.cache.put(current)
        return current

    def get_fresh_state(self, assessment_id: str, *, owner: str | None = None) -> Assessment:
        """The current state read from PostgreSQL, never from the cache (waiters use it:
        a notification can arrive before the writer's cache write)."""
        assessment_id = check_lookup_id(assessment_id)
        row = self._read(
            lambda conn: repository.fetch_assessment(conn, assessment_id, created_by=owner)
        )
        if row is None:
            raise AssessmentNotFoundError(assessment_id)
        return to_assessment(row)

    @property
    def notifier(self) -> StateNotifier:
        """This store's LISTEN connection for push-based waiting (started on first use)."""
        with self._notifier_lock:
            if self._notifier is None:
                self._notifier = StateNotifier(self.settings.database_url)
            return self._notifier

    def wait_for_completion(
        self, assessment_id: str, timeout: float = 30.0, *, owner: str | None = None
    ) -> Assessment:
        """Block until the assessment is finished (completed, cancelled, or failed with no
        retry coming); AssessmentTimeoutError after ``timeout`` seconds.

        Woken by the assessment's own change notifications; re-checks the database every
        WAIT_RECHECK_SECONDS as well, so a lost notification only delays."""
        assessment_id = check_lookup_id(assessment_id)
        timeout = check_positive("timeout", timeout)
        deadline = time.monotonic() + timeout
        woken = threading.Event()
        watch = self.notifier.watch(assessment_id, lambda _id, _state: woken.set())
        try:
            while True:
                current = self.get_fresh_state(assessment_id, owner=owner)
                if current.is_finished:
                    return current
                if time.monotonic() >= deadline:
                    raise AssessmentTimeoutError(assessment_id, timeout, current.state.value)
                wait_until(woken, deadline, WAIT_RECHECK_SECONDS)
        finally:
            watch.cancel()

    def list_assessments(
        self, filters: AssessmentFilters | None = None, *, owner: str | None = None
    ) -> AssessmentPage:
        """A page of assessments, newest first, with keyset pagination."""
        chosen = filters or AssessmentFilters()
        return self._read(lambda conn: queries.list_page(conn, chosen, owner=owner), replica=True)

    def get_assessment_stats(
        self, *, owner: str | None = None, window_seconds: int = 300
    ) -> AssessmentStats:
        """Counts by state, throughput, average processing time, error rate, dead letters."""
        window_seconds = check_count("windowSeconds", window_seconds) or 1
        window = window_seconds
        return self._read(
            lambda conn: queries.stats(conn, window_seconds=window, owner=owner), replica=True
        )

    def get_audit_trail(self, assessment_id: str, *, owner: str | None = None) -> list[AuditEntry]:
        """Every change of the assessment, oldest first."""
        assessment_id = check_lookup_id(assessment_id)

        def query(conn: Connection) -> list[RowMapping] | None:
            if repository.fetch_assessment(conn, assessment_id, created_by=owner) is None:
                return None
            return repository.fetch_audit_trail(conn, assessment_id)

        rows = self._read(query)
        if rows is None:
            raise AssessmentNotFoundError(assessment_id)
        return [AuditEntry.model_validate(dict(row)) for row in rows]

    def get_health_status(self) -> HealthStatus:
        """Whether PostgreSQL and Redis answer, with latencies."""
        return health.check(self.engines.primary, self.settings.redis_url)

    def subscribe(
        self,
        event_types: Sequence[str],
        handler: EventHandler,
        *,
        poll_interval_seconds: float = 1.0,
    ) -> Subscription:
        """Call ``handler`` for every ``assessment.*`` event of the given types, from any
        process, until the returned subscription is closed. Woken by change
        notifications; ``poll_interval_seconds`` bounds the delay if one is lost."""
        return subscribe_to_audit(
            self.engines.reader, event_types, handler, poll_interval_seconds, self.notifier
        )

    # -- batch maintenance (the work itself lives in assessment_store.maintenance) -----

    def batch_retry_failed_assessments(
        self, max_retries: int | None = None, *, progress: ProgressCallback | None = None
    ) -> list[str]:
        """Put every failed assessment with ``retry_count < max_retries`` back to pending
        now (ignoring its backoff), in batches, and publish them; returns the ids."""
        from assessment_store import maintenance

        limit = self.settings.max_retries if max_retries is None else max_retries
        check_count("maxRetries", limit)
        return maintenance.retry_failures(
            self, max_retries=limit, due_only=False, progress=progress
        )

    def retry_due_assessments(self, *, max_batches: int | None = None) -> list[str]:
        """The scheduled retry: failed assessments whose next_retry_at has passed."""
        from assessment_store import maintenance

        return maintenance.retry_failures(
            self, max_retries=self.settings.max_retries, due_only=True, max_batches=max_batches
        )

    def cleanup_old_assessments(
        self,
        retention_days: float | None = None,
        *,
        batch_size: int | None = None,
        max_batches: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> int:
        """Delete finished assessments (and their audit rows) older than ``retention_days``,
        in short transactions of ``batch_size`` rows; returns how many were deleted."""
        from assessment_store import maintenance

        deleted, _audit_rows = maintenance.delete_finished(
            self,
            retention_days,
            batch_size=batch_size,
            max_batches=max_batches,
            progress=progress,
        )
        return deleted
