"""``get_migration_status()``: the settings in force and what each side holds.

The store's figures come from PostgreSQL. The legacy side keeps its assessments in
the memory of the process that created them, so its figures are this process's own
plus the reports other processes write every few seconds (``reports``): a report
that has not been refreshed for STALE_AFTER_SECONDS belongs to a process that stopped
(or hangs), and what it had in flight is shown as ``lostInFlight``, not as in flight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import RowMapping

from assessment_store.migration.legacy import LegacyCounts
from assessment_store.migration.overrides import MigrationConfig
from assessment_store.models import SystemGauges, WireModel
from assessment_store.states import AssessmentState

STALE_AFTER_SECONDS: Final = 10.0


class SideStatus(WireModel):
    """What one side holds: every assessment, and those not finished yet."""

    held: int
    in_flight: int
    by_state: dict[str, int]


class LegacyReport(WireModel):
    """Another process's last report of its legacy backend."""

    reporter: str
    backend: str
    held: int
    in_flight: int
    age_seconds: float
    stale: bool


class LegacyStatus(SideStatus):
    """The legacy side: this process's backend and the fresh reports of others."""

    backend: str
    lost_in_flight: int
    reporters: list[LegacyReport]


class OverrideStatus(WireModel):
    value: int | bool
    updated_by: str
    updated_at: datetime


class MigrationStatus(WireModel):
    """The settings in force, where they come from, and both sides' figures."""

    enable_store: bool
    legacy_fallback: bool
    percentage: int
    enable_metrics: bool
    enable_audit_logging: bool
    # The share of new work the store gets now: the percentage, 0 with the store off.
    store_share: int
    overrides: dict[str, OverrideStatus]
    store: SideStatus
    legacy: LegacyStatus
    # This process since it started: creates by side, and store failures sent legacy.
    routed: dict[str, int]
    fallbacks: int
    complete: bool


def store_side(gauges: SystemGauges) -> SideStatus:
    """In flight: pending, processing, or failed with an automatic retry coming."""
    counts = {state.value: n for state, n in sorted(gauges.counts_by_state.items())}
    retrying = counts.get(AssessmentState.FAILED.value, 0) - gauges.dead_letters
    in_flight = (
        counts.get(AssessmentState.PENDING.value, 0)
        + counts.get(AssessmentState.PROCESSING.value, 0)
        + max(0, retrying)
    )
    return SideStatus(held=sum(counts.values()), in_flight=in_flight, by_state=counts)


def legacy_side(backend: str, own: LegacyCounts, rows: Sequence[RowMapping]) -> LegacyStatus:
    """This process's counts plus the other processes' fresh reports."""
    reports = [
        LegacyReport(
            reporter=row["reporter"],
            backend=row["backend"],
            held=row["held"],
            in_flight=row["in_flight"],
            age_seconds=round(float(row["age_seconds"]), 1),
            stale=float(row["age_seconds"]) > STALE_AFTER_SECONDS,
        )
        for row in rows
    ]
    by_state = dict(own.by_state)
    for row in rows:
        if float(row["age_seconds"]) <= STALE_AFTER_SECONDS:
            for state, n in _counts(row["by_state"]).items():
                by_state[state] = by_state.get(state, 0) + n
    fresh = [r for r in reports if not r.stale]
    return LegacyStatus(
        backend=backend,
        held=own.held + sum(r.held for r in fresh),
        in_flight=own.in_flight + sum(r.in_flight for r in fresh),
        by_state=dict(sorted(by_state.items())),
        lost_in_flight=sum(r.in_flight for r in reports if r.stale),
        reporters=reports,
    )


def _counts(value: object) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int)}


def is_complete(config: MigrationConfig, legacy: LegacyStatus) -> bool:
    """The store takes all new work and the legacy side has nothing in flight."""
    return config.store_share == 100 and legacy.in_flight == 0


def build(
    config: MigrationConfig,
    store: SideStatus,
    legacy: LegacyStatus,
    routed: Mapping[str, int],
    fallbacks: int,
) -> MigrationStatus:
    return MigrationStatus(
        enable_store=config.enable_store,
        legacy_fallback=config.legacy_fallback,
        percentage=config.percentage,
        enable_metrics=config.enable_metrics,
        enable_audit_logging=config.enable_audit_logging,
        store_share=config.store_share,
        overrides={
            name: OverrideStatus(value=o.value, updated_by=o.updated_by, updated_at=o.updated_at)
            for name, o in sorted(config.overrides.items())
        },
        store=store,
        legacy=legacy,
        routed=dict(routed),
        fallbacks=fallbacks,
        complete=is_complete(config, legacy),
    )
