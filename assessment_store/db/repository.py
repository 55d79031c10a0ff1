"""The repository: reading single assessments and their audit trails.

With ``transitions`` (every change of a row), ``reads`` (lists, stats, gauges, the
event log), ``sweeps`` (maintenance candidates, leases) it is the only code that
issues SQL against the store's tables. Functions take a Connection (inside a
transaction the service owns, or an autocommit read); they never commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, RowMapping, TextClause, text

from assessment_store.db import prepared
from assessment_store.db.transitions import ASSESSMENT_COLUMN_LIST


def fetch_identities(conn: Connection, ids: Sequence[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """For existing ids: (created_by, request_data), to judge an idempotent repeat."""
    result = conn.execute(
        text(
            "SELECT assessment_id, created_by, request_data FROM assessment_states "
            "WHERE assessment_id = ANY(CAST(:ids AS text[]))"
        ),
        {"ids": list(ids)},
    )
    return {row[0]: (row[1], row[2]) for row in result}


def fetch_assessment(
    conn: Connection,
    assessment_id: str,
    *,
    created_by: str | None = None,
    for_update: bool = False,
) -> dict[str, Any] | None:
    """The current row, or None (also None when ``created_by`` is given and differs).

    ``for_update`` locks the row until the transaction ends, so a change computed from
    it cannot be overtaken between the read and the write."""
    sql = f"SELECT {ASSESSMENT_COLUMN_LIST} FROM assessment_states WHERE assessment_id = :id"
    params: dict[str, object] = {"id": assessment_id}
    if created_by is not None:
        sql += " AND created_by = :created_by"
        params["created_by"] = created_by
    if for_update:
        sql += " FOR UPDATE"
    # The hottest read (get_state, every wait, every refusal): prepared, rows as dicts.
    rows = prepared.execute(conn, _cached_text(sql), params)
    return rows[0] if rows else None


def fetch_assessments(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The current rows of those of ``ids`` that exist, by id."""
    result = conn.execute(
        text(
            f"SELECT {ASSESSMENT_COLUMN_LIST} FROM assessment_states "
            "WHERE assessment_id = ANY(CAST(:ids AS text[]))"
        ),
        {"ids": list(ids)},
    )
    return {row["assessment_id"]: dict(row) for row in result.mappings()}


@lru_cache(maxsize=8)
def _cached_text(sql: str) -> TextClause:
    return text(sql)


def fetch_audit_trail(conn: Connection, assessment_id: str) -> list[RowMapping]:
    """The audit rows of one assessment, ordered by version."""
    result = conn.execute(
        text(
            "SELECT id, assessment_id, event, old_state, new_state, version_from, version_to, "
            "changed_by, change_reason, created_at FROM assessment_state_audit "
            "WHERE assessment_id = :id ORDER BY version_to"
        ),
        {"id": assessment_id},
    )
    return list(result.mappings())


def ping(conn: Connection) -> None:
    """A trivial round trip that fails if the server is unreachable."""
    conn.execute(text("SELECT 1"))
