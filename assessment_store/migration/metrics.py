"""Prometheus metrics of the migration (MIGRATION_ENABLE_METRICS), recorded by the
process that routes: where new work went and why, store failures, and how the legacy
side's assessments end and how long they take (to compare with the store's
``assessmentstore_processing_time_seconds``). No label carries an assessment id."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ROUTED = Counter(
    "assessmentstore_migration_routed_total",
    "New assessments routed by the migration facade, by side and reason",
    ["side", "reason"],
)
STORE_CREATE_FAILURES = Counter(
    "assessmentstore_migration_store_create_failures_total",
    "Creates the store could not take (StoreUnavailableError), by what followed",
    ["outcome"],  # fallback (sent to the legacy side) or raised (to the caller)
)
LEGACY_FINISHED = Counter(
    "assessmentstore_migration_legacy_finished_total",
    "Legacy-side assessments that ended, by final state",
    ["state"],
)
LEGACY_PROCESSING_SECONDS = Histogram(
    "assessmentstore_migration_legacy_processing_time_seconds",
    "Time from start to end of a legacy-side assessment",
    ["assessment_type", "outcome"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
