"""SQL of the migration off the legacy event system: the run-time overrides of its
settings, and the reports of what each process's in-memory legacy backend holds."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, RowMapping, delete, extract, func, select
from sqlalchemy.dialects.postgresql import insert

from assessment_store.db.tables import migration_legacy_reports, migration_overrides

# A report this old belongs to a process long gone; the next report purges it.
PURGE_REPORTS_AFTER_SECONDS = 86_400


def fetch_overrides(conn: Connection) -> list[RowMapping]:
    """Every override: setting, value (decoded JSON), updated_by, updated_at."""
    return list(conn.execute(select(migration_overrides)).mappings())


def upsert_overrides(conn: Connection, values: Mapping[str, object], updated_by: str) -> None:
    """Set each ``setting -> value`` (JSON-encodable), stamped now and by ``updated_by``."""
    if not values:
        return
    statement = insert(migration_overrides).values(
        [
            {"setting": key, "value": value, "updated_by": updated_by}
            for key, value in values.items()
        ]
    )
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[migration_overrides.c.setting],
            set_={
                "value": statement.excluded.value,
                "updated_by": statement.excluded.updated_by,
                "updated_at": func.now(),
            },
        )
    )


def delete_overrides(conn: Connection, settings: Sequence[str]) -> list[str]:
    """Remove the overrides of ``settings``; returns the ones that existed."""
    result = conn.execute(
        delete(migration_overrides)
        .where(migration_overrides.c.setting.in_(list(settings)))
        .returning(migration_overrides.c.setting)
    )
    return sorted(row[0] for row in result)


def upsert_legacy_report(
    conn: Connection,
    *,
    reporter: str,
    backend: str,
    held: int,
    in_flight: int,
    by_state: Mapping[str, int],
) -> None:
    """Record what ``reporter``'s legacy backend holds now; purges long-dead reports."""
    values = {
        "reporter": reporter,
        "backend": backend,
        "held": held,
        "in_flight": in_flight,
        "by_state": json.loads(json.dumps(dict(by_state))),
    }
    statement = insert(migration_legacy_reports).values(values)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[migration_legacy_reports.c.reporter],
            set_={
                "backend": statement.excluded.backend,
                "held": statement.excluded.held,
                "in_flight": statement.excluded.in_flight,
                "by_state": statement.excluded.by_state,
                "reported_at": func.now(),
            },
        )
    )
    conn.execute(
        delete(migration_legacy_reports).where(
            migration_legacy_reports.c.reported_at
            < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, PURGE_REPORTS_AFTER_SECONDS)
        )
    )


def delete_legacy_report(conn: Connection, reporter: str) -> None:
    conn.execute(
        delete(migration_legacy_reports).where(migration_legacy_reports.c.reporter == reporter)
    )


def fetch_legacy_reports(conn: Connection) -> list[RowMapping]:
    """Every report with its age in seconds by the database's clock (no host skew)."""
    age = extract("epoch", func.now() - migration_legacy_reports.c.reported_at)
    return list(
        conn.execute(
            select(migration_legacy_reports, age.label("age_seconds")).order_by(
                migration_legacy_reports.c.reporter
            )
        ).mappings()
    )
