"""The migration's settings: the configured MIGRATION_* defaults, overridden at run time
by rows of ``migration_overrides`` (``assessment-store migration set``).

Every facade re-reads the table at most every MIGRATION_REFRESH_SECONDS (2 s by
default), so an override reaches every running process within a few seconds: a
cut-over step or a rollback needs no restart. When the database cannot be read the
last values read stay in force (one log line per outage, not one per create).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Final

from sqlalchemy import Connection, RowMapping

from assessment_store.bootstrap import Runtime
from assessment_store.config import Settings
from assessment_store.db import migration as sql
from assessment_store.db.tables import MIGRATION_SETTINGS
from assessment_store.errors import AssessmentStoreError, InvalidInputError
from assessment_store.inputs import check_text
from assessment_store.outages import OutageLog

logger = logging.getLogger("assessment_store.migration")
READ_OUTAGES = OutageLog(logger)

PERCENTAGE: Final = "percentage"
LEGACY_FALLBACK: Final = "legacy_fallback"
ENABLE_STORE: Final = "enable_store"
# The command line's option for each setting (errors name what the operator typed).
OPTION_NAMES: Final = {
    PERCENTAGE: "percentage",
    LEGACY_FALLBACK: "legacyFallback",
    ENABLE_STORE: "enableStore",
}


@dataclass(frozen=True, slots=True)
class Override:
    """One setting's run-time value, who set it and when."""

    value: int | bool
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class MigrationConfig:
    """The settings in force: defaults from MIGRATION_*, overridden by ``overrides``."""

    enable_store: bool
    legacy_fallback: bool
    percentage: int
    enable_metrics: bool
    enable_audit_logging: bool
    overrides: Mapping[str, Override] = field(default_factory=dict)

    @classmethod
    def defaults(cls, settings: Settings) -> MigrationConfig:
        return cls(
            enable_store=settings.migration_enable_store,
            legacy_fallback=settings.migration_legacy_fallback,
            percentage=settings.migration_percentage,
            enable_metrics=settings.migration_enable_metrics,
            enable_audit_logging=settings.migration_enable_audit_logging,
        )

    @property
    def store_share(self) -> int:
        """The percentage new work actually gets: 0 with the store disabled."""
        return self.percentage if self.enable_store else 0

    def describe(self) -> str:
        return (
            f"percentage={self.percentage} enable_store={self.enable_store} "
            f"legacy_fallback={self.legacy_fallback}"
        )


def check_value(setting: str, value: object) -> int | bool:
    """A valid value for ``setting`` or InvalidInputError naming its option."""
    name = OPTION_NAMES.get(setting)
    if name is None:
        raise InvalidInputError(
            "setting", f"must be one of {', '.join(MIGRATION_SETTINGS)}", setting
        )
    if setting == PERCENTAGE:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise InvalidInputError(name, "must be a whole number from 0 to 100", value)
        return value
    if not isinstance(value, bool):
        raise InvalidInputError(name, "must be true or false (on or off)", value)
    return value


def effective(settings: Settings, rows: Sequence[RowMapping]) -> MigrationConfig:
    """The defaults with every valid override row applied (a bad row, written by hand
    past the command line, is logged and ignored)."""
    config = MigrationConfig.defaults(settings)
    overrides: dict[str, Override] = {}
    values: dict[str, int | bool] = {}
    for row in rows:
        setting = str(row["setting"])
        try:
            value = check_value(setting, row["value"])
        except InvalidInputError as exc:
            logger.warning("migration_override_ignored: %s", exc)
            continue
        updated_at = row["updated_at"]
        assert isinstance(updated_at, datetime)
        overrides[setting] = Override(value, str(row["updated_by"]), updated_at)
        values[setting] = value
    return replace(
        config,
        percentage=int(values.get(PERCENTAGE, config.percentage)),
        legacy_fallback=bool(values.get(LEGACY_FALLBACK, config.legacy_fallback)),
        enable_store=bool(values.get(ENABLE_STORE, config.enable_store)),
        overrides=overrides,
    )


def write(runtime: Runtime, values: Mapping[str, object], *, updated_by: str) -> MigrationConfig:
    """Store overrides (validated, all or none) and return the settings now in force."""
    if not values:
        raise InvalidInputError(
            "settings", "give at least one of percentage, legacyFallback, enableStore", {}
        )
    checked = {setting: check_value(setting, value) for setting, value in values.items()}
    actor = check_text("updatedBy", updated_by, max_chars=255, required=True) or "unknown"

    def upsert(conn: Connection) -> list[RowMapping]:
        sql.upsert_overrides(conn, checked, actor)
        return sql.fetch_overrides(conn)

    rows = runtime.transact(upsert)
    config = effective(runtime.settings, rows)
    logger.info("migration_overrides_set by %s: %s (now %s)", actor, checked, config.describe())
    return config


def clear(runtime: Runtime, settings: Sequence[str] | None = None) -> list[str]:
    """Remove overrides (all, or of ``settings``) so the configured defaults hold again;
    returns the settings whose override was removed."""
    chosen = list(MIGRATION_SETTINGS if settings is None else settings)
    for setting in chosen:
        if setting not in MIGRATION_SETTINGS:
            raise InvalidInputError(
                "setting", f"must be one of {', '.join(MIGRATION_SETTINGS)}", setting
            )
    removed = runtime.transact(lambda conn: sql.delete_overrides(conn, chosen))
    logger.info("migration_overrides_cleared: %s", removed)
    return removed


def read(runtime: Runtime) -> MigrationConfig:
    """The settings in force now, read from the database."""
    return effective(runtime.settings, runtime.read(sql.fetch_overrides))


class OverrideCache:
    """The settings in force, re-read at most every ``refresh_seconds`` (thread-safe)."""

    def __init__(
        self,
        runtime: Runtime,
        refresh_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._runtime = runtime
        self._refresh = refresh_seconds or runtime.settings.migration_refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._config = MigrationConfig.defaults(runtime.settings)
        self._read_at: float | None = None

    @property
    def refresh_seconds(self) -> float:
        return self._refresh

    def current(self) -> MigrationConfig:
        """The cached settings, re-read first when older than ``refresh_seconds``."""
        read_at = self._read_at
        if read_at is not None and self._clock() - read_at < self._refresh:
            return self._config
        return self.refresh()

    def refresh(self, *, strict: bool = False) -> MigrationConfig:
        """Re-read now (once, for all threads waiting); the last values on failure, or
        with ``strict`` the failure raised."""
        asked = self._clock()
        with self._lock:
            if self._read_at is not None and self._read_at >= asked:
                return self._config  # another thread read while this one waited
            started = self._clock()
            previous = self._config
            try:
                fresh = read(self._runtime)
            except AssessmentStoreError as exc:
                if strict:
                    raise
                READ_OUTAGES.failed(
                    "migration_overrides_unreadable", exc, f"keeping {previous.describe()}"
                )
                self._read_at = started
                return previous
            READ_OUTAGES.succeeded("migration_overrides_unreadable")
            if self._read_at is None:
                if fresh.overrides:
                    logger.info(
                        "migration_settings: %s (overridden: %s)",
                        fresh.describe(),
                        ", ".join(sorted(fresh.overrides)),
                    )
            elif fresh.describe() != previous.describe():
                logger.info(
                    "migration_settings_changed: %s -> %s", previous.describe(), fresh.describe()
                )
            self._config, self._read_at = fresh, started
            return fresh
