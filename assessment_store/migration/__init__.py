"""Moving off the legacy event system (SPEC section 11).

``AssessmentStoreMigration`` (``facade``) routes each new assessment to the store or to
a legacy backend (``legacy.LegacyBackend``; ``emitter.EventEmitterBackend`` ships) by a
stable hash of its id (``routing``), at settings that operators override at run time
(``overrides``), and answers reads, waits and subscriptions for both sides.
"""

from __future__ import annotations

from assessment_store.migration.emitter import EventEmitterBackend
from assessment_store.migration.facade import AssessmentStoreMigration, MigrationSubscription
from assessment_store.migration.legacy import SEED_EVENT_TYPES, LegacyBackend, LegacyCounts
from assessment_store.migration.overrides import MigrationConfig
from assessment_store.migration.routing import Route, Side, bucket, routes_to_store
from assessment_store.migration.status import MigrationStatus

__all__ = [
    "SEED_EVENT_TYPES",
    "AssessmentStoreMigration",
    "EventEmitterBackend",
    "LegacyBackend",
    "LegacyCounts",
    "MigrationConfig",
    "MigrationStatus",
    "MigrationSubscription",
    "Route",
    "Side",
    "bucket",
    "routes_to_store",
]
