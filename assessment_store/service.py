"""AssessmentStore: the Python API (create, read, wait, change, subscribe, maintain).

Thin by design: each method validates its arguments and calls one use case
(``creation``, ``changes``, ``maintenance``, ``transfer``) or one read of the
repository. The parts it runs on (engines, publisher, handlers, cache, LISTEN
connection) come from the composition root, ``bootstrap.assemble``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, RowMapping

from assessment_store import at_rest, changes, creation, health, maintenance, queries
from assessment_store.bootstrap import Runtime, assemble
from assessment_store.cache import StateCache
from assessment_store.changes import SYSTEM_ACTOR, to_assessment
from assessment_store.config import Settings
from assessment_store.db import reads, repository
from assessment_store.db.engine import Engines
from assessment_store.dispatch import Dispatcher, dispatch_item
from assessment_store.errors import AssessmentNotFoundError, ForbiddenError, InvalidInputError
from assessment_store.events import EventHandler, Subscription, subscribe_to_audit
from assessment_store.handlers.registry import HandlerRegistry
from assessment_store.inputs import check_count, check_lookup_id, check_window_seconds
from assessment_store.live import LiveFeed
from assessment_store.models import (
    FROM_DATABASE,
    Assessment,
    AssessmentFilters,
    AssessmentPage,
    AssessmentRequest,
    AssessmentStats,
    AuditEntry,
    HealthStatus,
    ProgressOutcome,
    ProgressUpdate,
    SystemGauges,
)
from assessment_store.notify import StateNotifier
from assessment_store.overview import Overview, build_overview
from assessment_store.progress_batch import apply_batch
from assessment_store.search import search_filters
from assessment_store.waiting import WAIT_RECHECK_SECONDS, WaitLoop

ProgressCallback = Callable[[int], None]


class AssessmentStore:
    """The durable assessment store.

    ``AssessmentStore()`` is a producer's store: settings from the environment, and
    every assessment it creates is published to the Celery queues right after its
    transaction commits. Pass ``dispatcher=NullDispatcher()`` for one that publishes
    nothing (tests, tools that drive assessments themselves).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        engines: Engines | None = None,
        dispatcher: Dispatcher | None = None,
        handlers: HandlerRegistry | None = None,
        application_name: str = "assessment-store",
    ) -> None:
        self.runtime: Runtime = assemble(
            settings,
            engines=engines,
            dispatcher=dispatcher,
            handlers=handlers,
            application_name=application_name,
        )
        # How often a waiter re-reads the row without a notification.
        self.wait_recheck_seconds = WAIT_RECHECK_SECONDS

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def engines(self) -> Engines:
        return self.runtime.engines

    @property
    def handlers(self) -> HandlerRegistry:
        return self.runtime.handlers

    @property
    def cache(self) -> StateCache | None:
        return self.runtime.cache

    @property
    def notifier(self) -> StateNotifier:
        """This store's LISTEN connection for push-based waiting (started on first use)."""
        return self.runtime.notifier

    def close(self) -> None:
        """Release this process's connections (database, LISTEN, broker, cache)."""
        self.runtime.close()

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
        return creation.create(self.runtime, parsed, created_by)

    # -- reading ----------------------------------------------------------------

    def get_state(self, assessment_id: str, *, owner: str | None = None) -> Assessment:
        """The current state; ``owner`` limits the lookup to that creator's assessments.

        With the cache enabled, may be up to CACHE_TTL_SECONDS old for assessments that
        are not completed or cancelled (see assessment_store/cache.py)."""
        assessment_id = check_lookup_id(assessment_id)
        cache = self.runtime.cache
        if cache is not None:
            cached = cache.get(assessment_id)
            if cached is not None:
                if owner is not None and cached.created_by != owner:
                    raise AssessmentNotFoundError(assessment_id)
                return cached
        current = self.get_fresh_state(assessment_id, owner=owner)
        if cache is not None:
            cache.put(current)
        return current

    def get_fresh_state(self, assessment_id: str, *, owner: str | None = None) -> Assessment:
        """The current state read from the primary, never from the cache (waiters use it:
        a notification can arrive before the writer's cache write)."""
        assessment_id = check_lookup_id(assessment_id)
        row = self.runtime.read(
            lambda conn: repository.fetch_assessment(conn, assessment_id, created_by=owner)
        )
        if row is None:
            raise AssessmentNotFoundError(assessment_id)
        return to_assessment(at_rest.open_row(self.runtime.keys, row))

    def wait_for_completion(
        self, assessment_id: str, timeout: float = 30.0, *, owner: str | None = None
    ) -> Assessment:
        """Block until the assessment is finished (completed, cancelled, or failed with no
        retry coming); AssessmentTimeoutError after ``timeout`` seconds.

        Woken by the assessment's own change notifications; re-reads the row every
        ``wait_recheck_seconds`` as well, so a lost notification only delays."""
        assessment_id = check_lookup_id(assessment_id)
        plan = WaitLoop(assessment_id, timeout, self.wait_recheck_seconds)
        woken = threading.Event()
        watch = self.notifier.watch(assessment_id, lambda _id, _state: woken.set())
        try:
            while True:
                current = self.get_fresh_state(assessment_id, owner=owner)
                pause = plan.pause(current)
                if pause is None:
                    return current
                woken.wait(pause)
                woken.clear()
        finally:
            watch.cancel()

    def list_assessments(
        self, filters: AssessmentFilters | None = None, *, owner: str | None = None
    ) -> AssessmentPage:
        """A page of assessments, newest first, with keyset pagination (the replica).

        With ``owner`` (a producer or viewer), only that creator's assessments: asking
        for another creator's is ForbiddenError, never silently answered with one's own.
        """
        chosen = filters or AssessmentFilters()
        if owner is not None and chosen.created_by not in (None, owner):
            raise ForbiddenError(
                f"createdBy: you may list only your own assessments (createdBy {owner!r})"
            )
        keys = self.runtime.keys
        return self.runtime.read(
            lambda conn: queries.list_page(conn, chosen, owner=owner, keys=keys), replica=True
        )

    def search_assessments(
        self, query: str, filters: AssessmentFilters | None = None, *, owner: str | None = None
    ) -> AssessmentPage:
        """list_assessments of those whose id, server name or (while encryption is off)
        error message holds ``query``, any case. Indexed from 3 characters; 1 or 2 have
        no trigram and are found by a scan, slow when they are rare (db/text_search)."""
        return self.list_assessments(search_filters(query, filters), owner=owner)

    def get_assessment_stats(
        self, *, owner: str | None = None, window_seconds: int = 300
    ) -> AssessmentStats:
        """Counts by state, throughput, average processing time, error rate, dead letters."""
        window = check_window_seconds("windowSeconds", window_seconds)
        return self.runtime.read(
            lambda conn: queries.stats(conn, window_seconds=window, owner=owner), replica=True
        )

    def get_system_gauges(self) -> SystemGauges:
        """Whole-system gauges for metrics: counts by state, oldest pending, dead letters."""
        return queries.gauges(self.runtime.read(reads.fetch_gauges, replica=True))

    def get_overview(self, *, owner: str | None = None) -> Overview:
        """The dashboard's figures: ``owner``'s assessments (None: all), the queues."""
        broker_url = self.settings.effective_broker_url
        return build_overview(lambda q: self.runtime.read(q, replica=True), broker_url, owner)

    def open_live_feed(self) -> LiveFeed:
        """A feed of every change, read once for all its subscribers (see live)."""
        return LiveFeed(self.runtime.read, self.notifier, keys=self.runtime.keys)

    def get_audit_trail(self, assessment_id: str, *, owner: str | None = None) -> list[AuditEntry]:
        """Every change of the assessment, oldest first."""
        assessment_id = check_lookup_id(assessment_id)

        def query(conn: Connection) -> list[RowMapping] | None:
            if repository.fetch_assessment(conn, assessment_id, created_by=owner) is None:
                return None
            return repository.fetch_audit_trail(conn, assessment_id)

        rows = self.runtime.read(query)
        if rows is None:
            raise AssessmentNotFoundError(assessment_id)
        return [self._audit_entry(row) for row in rows]

    def get_audit_trails(self, assessment_ids: Sequence[str]) -> dict[str, list[AuditEntry]]:
        """The audit trails of several assessments at once (export), oldest first."""
        ids = list(assessment_ids)
        trails = self.runtime.read(lambda conn: reads.fetch_audit_trails(conn, ids))
        return {key: [self._audit_entry(row) for row in rows] for key, rows in trails.items()}

    def _audit_entry(self, row: RowMapping) -> AuditEntry:
        opened = at_rest.open_audit(self.runtime.keys, row)
        return AuditEntry.model_validate(dict(opened), context=FROM_DATABASE)

    def get_health_status(self) -> HealthStatus:
        """Whether PostgreSQL and Redis answer, with latencies."""
        return health.check(lambda: self.runtime.read(repository.ping), self.settings.redis_url)

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
            self.runtime.read,
            event_types,
            handler,
            poll_interval_seconds,
            self.notifier,
            keys=self.runtime.keys,
        )

    # -- changing ---------------------------------------------------------------

    def start_processing(
        self, assessment_id: str, worker_id: str, *, expected_version: int | None = None
    ) -> Assessment:
        """Claim a pending assessment for ``worker_id`` (pending -> processing) with a lease."""
        return changes.claim(
            self.runtime, assessment_id, worker_id, expected_version=expected_version
        )

    def update_progress(
        self,
        assessment_id: str,
        progress: int,
        message: str | None = None,
        *,
        expected_version: int | None = None,
        changed_by: str | None = None,
    ) -> Assessment:
        """Record progress (0-100) of a processing assessment; audited like any change."""
        return changes.report_progress(
            self.runtime,
            assessment_id,
            progress,
            message,
            changed_by=changed_by or SYSTEM_ACTOR,
            expected_version=expected_version,
        )

    def batch_update_progress(
        self,
        updates: Sequence[ProgressUpdate | Mapping[str, Any]],
        *,
        changed_by: str | None = None,
    ) -> list[ProgressOutcome]:
        """Many update_progress calls (at most 1000), each a compare-and-set of its own:
        one outcome per update, in input order; a refusal affects nobody else."""
        return apply_batch(self.runtime, updates, changed_by=changed_by or SYSTEM_ACTOR)

    def complete_assessment(
        self,
        assessment_id: str,
        result: Mapping[str, Any] | Any,
        *,
        expected_version: int | None = None,
        changed_by: str | None = None,
    ) -> Assessment:
        """Finish a processing assessment successfully with ``result`` as result_data."""
        return changes.complete(
            self.runtime,
            assessment_id,
            result,
            changed_by=changed_by or SYSTEM_ACTOR,
            expected_version=expected_version,
        )

    def fail_assessment(
        self,
        assessment_id: str,
        error: str,
        *,
        permanent: bool = False,
        expected_version: int | None = None,
        changed_by: str | None = None,
    ) -> Assessment:
        """Fail the running attempt. While retries remain (and the failure is not
        ``permanent``) ``next_retry_at`` is set with exponential backoff and jitter."""
        return changes.fail(
            self.runtime,
            assessment_id,
            error,
            permanent=permanent,
            changed_by=changed_by or SYSTEM_ACTOR,
            expected_version=expected_version,
        )

    def cancel_assessment(
        self,
        assessment_id: str,
        reason: str | None = None,
        *,
        owner: str | None = None,
        expected_version: int | None = None,
        changed_by: str | None = None,
    ) -> Assessment:
        """Cancel a pending or processing assessment; a running handler stops at its next
        progress report and its result is discarded."""
        return changes.cancel(
            self.runtime,
            assessment_id,
            reason,
            changed_by=changed_by or owner or SYSTEM_ACTOR,
            owner=owner,
            expected_version=expected_version,
        )

    def retry_assessment(
        self,
        assessment_id: str,
        *,
        owner: str | None = None,
        expected_version: int | None = None,
        changed_by: str | None = None,
    ) -> Assessment:
        """Put a failed assessment back to pending now (also when its automatic retries
        are used up) and publish it."""
        retried = changes.retry(
            self.runtime,
            assessment_id,
            changed_by=changed_by or owner or SYSTEM_ACTOR,
            owner=owner,
            expected_version=expected_version,
        )
        self.runtime.publish(
            [
                dispatch_item(
                    retried.assessment_id, retried.priority, retried.request_data, self.settings
                )
            ]
        )
        return retried

    # -- maintenance --------------------------------------------------------------

    def batch_retry_failed_assessments(
        self, max_retries: int | None = None, *, progress: ProgressCallback | None = None
    ) -> list[str]:
        """Put every failed assessment with ``retry_count < max_retries`` back to pending
        now (ignoring its backoff), in batches, and publish them; returns the ids."""
        limit = self.settings.max_retries if max_retries is None else max_retries
        check_count("maxRetries", limit)
        return maintenance.retry_failures(
            self.runtime, max_retries=limit, due_only=False, progress=progress
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
        deleted, _audit_rows = maintenance.delete_finished(
            self.runtime,
            retention_days,
            batch_size=batch_size,
            max_batches=max_batches,
            progress=progress,
        )
        return deleted

    def run_maintenance_job(
        self, job: str, *, progress: ProgressCallback | None = None
    ) -> maintenance.JobReport:
        """Run one of beat's jobs now (rescue, redispatch, retry, retention); safe
        alongside a running beat."""
        if job not in maintenance.JOBS:
            raise InvalidInputError("job", f"must be one of {', '.join(maintenance.JOBS)}", job)
        return maintenance.JOBS[job](self.runtime, progress=progress)
