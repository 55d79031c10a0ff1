"""Read-side SQL: filtered, keyset-paginated lists, stats, scrape-time gauges, audit
trails in bulk, and the audit table read as an event log (``subscribe``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, RowMapping, text

from assessment_store.db.predicates import DEAD_LETTER
from assessment_store.db.text_search import PROBE_ROWS, search_condition, search_statement
from assessment_store.db.transitions import ASSESSMENT_COLUMN_LIST
from assessment_store.states import AssessmentState

# One count per state, each named after its state.
STATE_COUNTS = ", ".join(
    f"count(*) FILTER (WHERE state = '{state.value}') AS {state.value}" for state in AssessmentState
)


@dataclass(frozen=True, slots=True)
class ListQuery:
    """Filters and keyset position for :func:`list_assessments`."""

    states: Sequence[str] | None
    assessment_type: str | None
    server_name: str | None
    source: str | None
    created_by: str | None
    created_after: datetime | None
    created_before: datetime | None
    after: tuple[datetime, str] | None
    limit: int
    # A case-insensitive substring of the id, server name or (``search_errors``)
    # error message; see text_search.
    search: str | None = None
    search_errors: bool = True


def list_assessments(conn: Connection, query: ListQuery) -> list[RowMapping]:
    """Rows newest first, keyset-paginated on (created_at, assessment_id); limit+1 fetched."""
    where: list[str] = []
    params: dict[str, object] = {"limit": query.limit + 1}
    if query.states:
        where.append("state = ANY(CAST(:states AS assessment_state[]))")
        params["states"] = list(query.states)
    for column in ("assessment_type", "server_name", "source", "created_by"):
        value = getattr(query, column)
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = value
    if query.created_after is not None:
        where.append("created_at >= :created_after")
        params["created_after"] = query.created_after
    if query.created_before is not None:
        where.append("created_at < :created_before")
        params["created_before"] = query.created_before
    if query.search is not None:
        where.append(search_condition(query.search, params, errors=query.search_errors))
    if query.after is not None:
        where.append("(created_at, assessment_id) < (:after_at, :after_id)")
        params["after_at"], params["after_id"] = query.after
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    sql = (
        f"SELECT {ASSESSMENT_COLUMN_LIST} FROM assessment_states {clause} "
        "ORDER BY created_at DESC, assessment_id DESC LIMIT :limit"
    )
    if query.search is not None:
        params["probe_rows"] = PROBE_ROWS
        sql = search_statement(ASSESSMENT_COLUMN_LIST, clause)
    return list(conn.execute(text(sql), params).mappings())


def fetch_stats(conn: Connection, *, window_seconds: int, created_by: str | None) -> RowMapping:
    """Counts by state, and completions, failures and run time within the window."""
    owner = "WHERE created_by = :created_by" if created_by is not None else ""
    return (
        conn.execute(
            text(
                f"""
                SELECT
                  {STATE_COUNTS},
                  count(*) FILTER (WHERE {DEAD_LETTER}) AS dead_letters,
                  count(*) FILTER (WHERE state = 'completed' AND completed_at >= cutoff)
                    AS recent_completed,
                  count(*) FILTER (WHERE state = 'failed' AND completed_at >= cutoff)
                    AS recent_failed,
                  avg(extract(epoch FROM completed_at - started_at))
                    FILTER (WHERE state = 'completed' AND completed_at >= cutoff)
                    AS recent_average_seconds
                FROM assessment_states,
                     LATERAL (SELECT now() - make_interval(secs => :window) AS cutoff) AS w
                {owner}
                """
            ),
            {"window": window_seconds, "created_by": created_by},
        )
        .mappings()
        .one()
    )


def fetch_audit_trails(conn: Connection, ids: Sequence[str]) -> dict[str, list[RowMapping]]:
    """The audit rows of several assessments, each ordered by version."""
    result = conn.execute(
        text(
            "SELECT id, assessment_id, event, old_state, new_state, version_from, version_to, "
            "changed_by, change_reason, created_at FROM assessment_state_audit "
            "WHERE assessment_id = ANY(CAST(:ids AS text[])) ORDER BY assessment_id, version_to"
        ),
        {"ids": list(ids)},
    )
    trails: dict[str, list[RowMapping]] = {i: [] for i in ids}
    for row in result.mappings():
        trails[row["assessment_id"]].append(row)
    return trails


def existing_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` are already stored."""
    result = conn.execute(
        text(
            "SELECT assessment_id FROM assessment_states "
            "WHERE assessment_id = ANY(CAST(:ids AS text[]))"
        ),
        {"ids": list(ids)},
    )
    return {row[0] for row in result}


def fetch_gauges(conn: Connection, created_by: str | None = None) -> RowMapping:
    """Counts by state, the oldest pending age and dead letters: of the whole system,
    or of one creator's assessments."""
    owner = "WHERE created_by = :created_by" if created_by is not None else ""
    return (
        conn.execute(
            text(
                f"""
                SELECT
                  {STATE_COUNTS},
                  count(*) FILTER (WHERE {DEAD_LETTER}) AS dead_letters,
                  coalesce(extract(epoch FROM now() - min(updated_at)
                                   FILTER (WHERE state = 'pending')), 0)
                    AS oldest_pending_seconds
                FROM assessment_states {owner}
                """
            ),
            {"created_by": created_by},
        )
        .mappings()
        .one()
    )


# -- the audit table as an event log ---------------------------------------------

AUDIT_EVENT_COLUMNS = (
    "id, assessment_id, event, old_state, new_state, version_from, version_to, changed_by, "
    "change_reason, created_at"
)


@contextmanager
def one_snapshot(conn: Connection) -> Iterator[None]:
    """The block's statements on an autocommit connection see one snapshot: audit rows
    and the current rows read with them agree (no record newer than its audit rows)."""
    conn.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        yield
    finally:
        conn.exec_driver_sql("ROLLBACK")


def audit_position(conn: Connection, window: int) -> tuple[int, set[int]]:
    """The newest audit id, and which ids of the ``window`` below it are visible (the
    others may belong to transactions still committing)."""
    newest = int(
        conn.execute(text("SELECT coalesce(max(id), 0) FROM assessment_state_audit")).scalar_one()
    )
    visible = set(
        conn.execute(
            text("SELECT id FROM assessment_state_audit WHERE id > :floor"),
            {"floor": newest - window},
        ).scalars()
    )
    return newest, visible


def audit_events_by_id(conn: Connection, ids: Sequence[int]) -> list[RowMapping]:
    """The audit rows with these ids that are visible now, by id."""
    if not ids:
        return []
    return list(
        conn.execute(
            text(
                f"SELECT {AUDIT_EVENT_COLUMNS} FROM assessment_state_audit "
                "WHERE id = ANY(:ids) ORDER BY id"
            ),
            {"ids": list(ids)},
        ).mappings()
    )


def audit_events_after(conn: Connection, after: int, limit: int) -> list[RowMapping]:
    """Up to ``limit`` audit rows with ids above ``after``, by id."""
    return list(
        conn.execute(
            text(
                f"SELECT {AUDIT_EVENT_COLUMNS} FROM assessment_state_audit "
                "WHERE id > :after ORDER BY id LIMIT :n"
            ),
            {"after": after, "n": limit},
        ).mappings()
    )


def fetch_assessments(conn: Connection, ids: Sequence[str]) -> list[RowMapping]:
    """The current rows of these assessments (those that exist)."""
    if not ids:
        return []
    return list(
        conn.execute(
            text(
                f"SELECT {ASSESSMENT_COLUMN_LIST} FROM assessment_states "
                "WHERE assessment_id = ANY(CAST(:ids AS text[]))"
            ),
            {"ids": list(ids)},
        ).mappings()
    )


def throughput_by_minute(
    conn: Connection, *, minutes: int, created_by: str | None
) -> list[RowMapping]:
    """Assessments that finished (completed or failed) in each of the last ``minutes``
    minutes: ``minutes_ago`` (0 is the current minute), ``completed``, ``failed``."""
    owner = "AND created_by = :created_by" if created_by is not None else ""
    return list(
        conn.execute(
            text(
                f"""
                SELECT floor(extract(epoch FROM now() - completed_at) / 60)::int AS minutes_ago,
                       count(*) FILTER (WHERE state = 'completed') AS completed,
                       count(*) FILTER (WHERE state = 'failed') AS failed
                FROM assessment_states
                WHERE completed_at >= now() - make_interval(mins => :minutes)
                  AND state IN ('completed', 'failed') {owner}
                GROUP BY 1 ORDER BY 1
                """
            ),
            {"minutes": minutes, "created_by": created_by},
        ).mappings()
    )
