"""AssessmentStoreMigration: one front for the store and the legacy system while work
moves from one to the other (SPEC section 11; the seed's ``AssessmentStoreMigration``).

Each new assessment gets its id first (the client's, or a fresh uuid4) and goes to
the side the routing picks for that id at the current settings (``routing``): the
store when ``bucket(id) < percentage`` and the store is enabled, else the legacy
backend. With MIGRATION_LEGACY_FALLBACK on, a create the store cannot take
(StoreUnavailableError: PostgreSQL down or not migrated) goes to the legacy side
instead; bad input is refused by both sides alike and never falls back.

An assessment stays for life on the side that created it: a change of the settings
moves only new work. Reads, waits and cancels find it there (the legacy side first: it
is in memory, so its own assessments are answered without a database round trip, and
even while the store is down); subscriptions listen on both sides, with the seed's
event names.

The settings are re-read from ``migration_overrides`` at most every
MIGRATION_REFRESH_SECONDS, so ``assessment-store migration set`` reaches every
process within a few seconds.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import assessment_store.migration.metrics as metrics
import assessment_store.migration.overrides as overrides
import assessment_store.migration.status as status
from assessment_store.changes import SYSTEM_ACTOR
from assessment_store.creation import check_runnable, check_timeout
from assessment_store.errors import AssessmentNotFoundError, StoreUnavailableError
from assessment_store.events import EVENT_TYPES as STORE_EVENT_NAMES
from assessment_store.events import AssessmentEventMessage, EventHandler
from assessment_store.migration.emitter import EventEmitterBackend
from assessment_store.migration.emitting import check_event_types
from assessment_store.migration.legacy import (
    AUDIT_ACTIONS,
    SEED_EVENT_TYPES,
    UPDATED,
    EventSubscription,
    LegacyBackend,
    audit_result,
)
from assessment_store.migration.overrides import MigrationConfig, OverrideCache
from assessment_store.migration.reports import LegacyReporter
from assessment_store.migration.routing import Reason, Route, Side, bucket, decide
from assessment_store.models import Assessment, AssessmentRequest
from assessment_store.outages import OutageLog
from assessment_store.service import AssessmentStore

logger = logging.getLogger("assessment_store.migration")
FALLBACK_OUTAGES = OutageLog(logger)
STORE_EVENT_TYPES = frozenset(STORE_EVENT_NAMES.values())
ENDED_EVENTS = ("assessment.completed", "assessment.failed", "assessment.cancelled")


class MigrationSubscription:
    """A subscription to both sides; :meth:`close` ends both."""

    def __init__(self, parts: Sequence[EventSubscription]) -> None:
        self.parts = list(parts)

    @property
    def active(self) -> bool:
        return any(part.active for part in self.parts)

    def close(self, timeout: float = 5.0) -> None:
        for part in self.parts:
            part.close(timeout)

    def __enter__(self) -> MigrationSubscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AssessmentStoreMigration:
    """The facade (see the module docstring).

    ``AssessmentStoreMigration()`` is a producer's: the store from the environment
    (publishing to the Celery queues) and the in-process EventEmitterBackend running
    the same handlers. ``background=False`` skips the thread that refreshes the
    settings and reports the legacy side to other processes (a one-shot tool).
    """

    def __init__(
        self,
        store: AssessmentStore | None = None,
        legacy: LegacyBackend | None = None,
        *,
        refresh_seconds: float | None = None,
        background: bool = True,
    ) -> None:
        self._owns_store = store is None
        self.store = store or AssessmentStore(application_name="assessment-store-migration")
        self._owns_legacy = legacy is None
        self.legacy: LegacyBackend = legacy or EventEmitterBackend(
            self.store.settings, handlers=self.store.handlers
        )
        self.overrides = OverrideCache(self.store.runtime, refresh_seconds)
        self.reporter = LegacyReporter(self.store.runtime, self.legacy, self.overrides)
        self._lock = threading.Lock()
        self._routed: Counter[str] = Counter({side.value: 0 for side in Side})
        self._fallbacks = 0
        defaults = MigrationConfig.defaults(self.store.settings)
        self._audit = defaults.enable_audit_logging
        self._metrics = defaults.enable_metrics
        self._listeners: list[EventSubscription] = []
        if self._audit:
            self._listeners.append(self.legacy.subscribe(SEED_EVENT_TYPES, self._audit_event))
        if self._metrics:
            self._listeners.append(self.legacy.subscribe(ENDED_EVENTS, self._measure_legacy))
        if background:
            self.reporter.start()

    def configuration(self) -> MigrationConfig:
        """The settings in force (at most MIGRATION_REFRESH_SECONDS old)."""
        return self.overrides.current()

    # -- creating ---------------------------------------------------------------

    def create_assessment(
        self, request: AssessmentRequest | Mapping[str, Any], *, created_by: str = SYSTEM_ACTOR
    ) -> str:
        """Create on the side the routing picks for the id; returns the id."""
        return self.batch_create_assessments([request], created_by=created_by)[0]

    def batch_create_assessments(
        self,
        requests: Sequence[AssessmentRequest | Mapping[str, Any]],
        *,
        created_by: str = SYSTEM_ACTOR,
    ) -> list[str]:
        """Route each request; the store's share is created in one transaction."""
        return [aid for aid, _route in self.route_and_create(requests, created_by=created_by)]

    def route_and_create(
        self,
        requests: Sequence[AssessmentRequest | Mapping[str, Any]],
        *,
        created_by: str = SYSTEM_ACTOR,
    ) -> list[tuple[str, Route]]:
        """As :meth:`batch_create_assessments`, with where each one went and why."""
        parsed = [
            r if isinstance(r, AssessmentRequest) else AssessmentRequest.model_validate(r)
            for r in requests
        ]
        for request in parsed:
            check_timeout(request, self.store.runtime)
            check_runnable(request)
        config = self.configuration()
        named = [r.model_copy(update={"id": r.id or str(uuid.uuid4())}) for r in parsed]
        routes = [
            self._route(str(r.id), config, client_id=p.id is not None)
            for r, p in zip(named, parsed, strict=True)
        ]
        to_store = [r for r, route in zip(named, routes, strict=True) if route.side is Side.STORE]
        if to_store:
            try:
                self.store.batch_create_assessments(to_store, created_by=created_by)
            except StoreUnavailableError as exc:
                if not config.legacy_fallback:
                    self._count_store_failure("raised")
                    raise
                self._count_store_failure("fallback", exc, len(to_store))
                routes = [
                    Route(Side.LEGACY, Reason.FALLBACK, r.bucket, r.percentage)
                    if r.side is Side.STORE
                    else r
                    for r in routes
                ]
        for request, route in zip(named, routes, strict=True):
            if route.side is Side.LEGACY:
                assert request.id is not None
                self.legacy.create_assessment(request.id, request, created_by=created_by)
        for request, route in zip(named, routes, strict=True):
            self._record(str(request.id), route)
        return [(str(r.id), route) for r, route in zip(named, routes, strict=True)]

    def route_for(self, assessment_id: str) -> Route:
        """Where a new assessment with this id would go now."""
        config = self.configuration()
        return decide(assessment_id, percentage=config.percentage, enable_store=config.enable_store)

    def _route(self, assessment_id: str, config: MigrationConfig, *, client_id: bool) -> Route:
        """A client's id may be a repeat: it stays where it is. A fresh uuid4 is new."""
        if client_id:
            position = bucket(assessment_id)
            if self.legacy.holds(assessment_id):
                return Route(Side.LEGACY, Reason.EXISTING, position, config.percentage)
            if self._store_holds(assessment_id):
                return Route(Side.STORE, Reason.EXISTING, position, config.percentage)
        return decide(assessment_id, percentage=config.percentage, enable_store=config.enable_store)

    def _store_holds(self, assessment_id: str) -> bool:
        try:
            self.store.get_fresh_state(assessment_id)
        except (AssessmentNotFoundError, StoreUnavailableError):
            return False  # unavailable: the create itself decides (or falls back)
        return True

    def _record(self, assessment_id: str, route: Route) -> None:
        with self._lock:
            self._routed[route.side.value] += 1
            if route.reason is Reason.FALLBACK:
                self._fallbacks += 1
        if self._metrics:
            metrics.ROUTED.labels(route.side.value, route.reason.value).inc()
        if self._audit:
            logger.info(
                "migration_routed: %s -> %s (%s, bucket %d, percentage %d)",
                assessment_id,
                route.side.value,
                route.reason.value,
                route.bucket,
                route.percentage,
            )

    def _count_store_failure(
        self, outcome: str, exc: Exception | None = None, count: int = 0
    ) -> None:
        if self._metrics:
            metrics.STORE_CREATE_FAILURES.labels(outcome).inc()
        if exc is not None:
            FALLBACK_OUTAGES.failed(
                "migration_store_fallback", exc, f"{count} assessment(s) sent to the legacy side"
            )

    # -- reading ----------------------------------------------------------------

    def side_of(self, assessment_id: str) -> Side:
        """The side that holds the assessment; AssessmentNotFoundError if neither."""
        if self.legacy.holds(assessment_id):
            return Side.LEGACY
        self.store.get_fresh_state(assessment_id)  # raises AssessmentNotFoundError
        return Side.STORE

    def get_state(self, assessment_id: str) -> Assessment:
        if self.legacy.holds(assessment_id):
            return self.legacy.get_state(assessment_id)
        return self.store.get_state(assessment_id)

    def wait_for_completion(self, assessment_id: str, timeout: float = 30.0) -> Assessment:
        """Block until finished, on whichever side holds it; AssessmentTimeoutError
        after ``timeout`` seconds."""
        if self.legacy.holds(assessment_id):
            return self.legacy.wait_for_completion(assessment_id, timeout)
        return self.store.wait_for_completion(assessment_id, timeout)

    def cancel_assessment(self, assessment_id: str, reason: str | None = None) -> Assessment:
        if self.legacy.holds(assessment_id):
            return self.legacy.cancel_assessment(assessment_id, reason)
        return self.store.cancel_assessment(assessment_id, reason)

    def subscribe(
        self,
        event_types: Sequence[str],
        handler: EventHandler,
        *,
        poll_interval_seconds: float = 1.0,
    ) -> MigrationSubscription:
        """Call ``handler`` for every event of ``event_types`` on either side, with the
        seed's names (``assessment.created``, ... ``assessment.cancelled``; also
        ``assessment.retried``, and the old catch-all ``assessment.updated``)."""
        wanted = check_event_types(event_types)
        from_store = STORE_EVENT_TYPES if UPDATED in wanted else wanted & STORE_EVENT_TYPES

        def forward(event: AssessmentEventMessage) -> None:
            if event.type in wanted:
                handler(event)
            if UPDATED in wanted:
                handler(event.model_copy(update={"type": UPDATED}))

        parts: list[EventSubscription] = [self.legacy.subscribe(sorted(wanted), handler)]
        try:
            parts.append(
                self.store.subscribe(
                    sorted(from_store), forward, poll_interval_seconds=poll_interval_seconds
                )
            )
        except BaseException:
            parts[0].close()
            raise
        return MigrationSubscription(parts)

    # -- the migration's state ------------------------------------------------------

    def get_migration_status(self) -> status.MigrationStatus:
        """The settings in force (read now) and what each side holds and has in flight."""
        config = self.overrides.refresh(strict=True)
        store_side = status.store_side(self.store.get_system_gauges())
        legacy_side = status.legacy_side(
            self.legacy.name, self.legacy.counts(), self.reporter.others()
        )
        with self._lock:
            routed, fallbacks = dict(self._routed), self._fallbacks
        return status.build(config, store_side, legacy_side, routed, fallbacks)

    def is_migration_complete(self) -> bool:
        """The percentage is 100 (the store enabled) and the legacy side, in every
        process that reports, has nothing in flight."""
        return self.get_migration_status().complete

    def set_overrides(
        self, values: Mapping[str, object], *, updated_by: str = SYSTEM_ACTOR
    ) -> MigrationConfig:
        """Store overrides for every process (``percentage``, ``legacy_fallback``,
        ``enable_store``); in force here at once, elsewhere within seconds."""
        overrides.write(self.store.runtime, values, updated_by=updated_by)
        return self.overrides.refresh(strict=True)

    def enable_legacy_mode(self, enabled: bool, *, updated_by: str = SYSTEM_ACTOR) -> None:
        """The seed's switch: all new work to the legacy side (``enable_store`` off),
        or back to the percentage."""
        self.set_overrides({overrides.ENABLE_STORE: not enabled}, updated_by=updated_by)

    # -- the rest -----------------------------------------------------------------

    def _audit_event(self, event: AssessmentEventMessage) -> None:
        """The seed's audit line of a legacy event (the store has its audit table)."""
        logger.info(
            "migration_legacy_event: action=%s result=%s assessment=%s version=%d actor=%s",
            AUDIT_ACTIONS.get(event.type, "assessment_unknown"),
            audit_result(event.type),
            event.assessment_id,
            event.version,
            event.changed_by,
        )

    def _measure_legacy(self, event: AssessmentEventMessage) -> None:
        metrics.LEGACY_FINISHED.labels(event.new_state.value).inc()
        try:
            ended = self.legacy.get_state(event.assessment_id)
        except AssessmentNotFoundError:
            return
        if ended.started_at is not None and ended.completed_at is not None:
            seconds = (ended.completed_at - ended.started_at).total_seconds()
            metrics.LEGACY_PROCESSING_SECONDS.labels(
                ended.assessment_type, ended.state.value
            ).observe(seconds)

    def close(self) -> None:
        """Stop the background thread and listeners; close what this facade made (the
        legacy backend lets its in-flight work finish for a few seconds)."""
        self.reporter.close()
        for listener in self._listeners:
            listener.close()
        if self._owns_legacy:
            self.legacy.close()
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> AssessmentStoreMigration:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
