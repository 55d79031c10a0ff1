"""The repository: creating, reading and changing single assessments.

With ``reads`` (lists, stats), ``sweeps`` (maintenance) and ``imports`` it is the only
code that issues SQL against the store's tables. Every change of an assessment row
is one compare-and-set statement that also writes the audit row (a data-modifying
CTE), so a change and its audit row are one round trip and can never be separated.
Functions take a Connection inside a transaction that the service owns; they never
commit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any, Final

from sqlalchemy import Connection, RowMapping, TextClause, text

from assessment_store.states import AssessmentEvent, AssessmentState

# Marker for "set this column to the transaction's now()" in a change.
NOW: Final = object()

ASSESSMENT_COLUMNS: Final = (
    "assessment_id, state, version, request_data, result_data, error_message, progress, "
    "message, priority, assessment_type, server_name, source, created_by, retry_count, "
    "next_retry_at, worker_id, created_at, updated_at, started_at, completed_at"
)
# Columns a change may set; anything else is a programming error, not user input.
CHANGEABLE_COLUMNS: Final = frozenset(
    {
        "state",
        "result_data",
        "error_message",
        "progress",
        "message",
        "retry_count",
        "next_retry_at",
        "worker_id",
        "started_at",
        "completed_at",
    }
)
JSONB_COLUMNS: Final = frozenset({"result_data"})


@dataclass(frozen=True, slots=True)
class NewAssessment:
    """One row to insert: the validated request in its stored (camelCase JSON) form."""

    assessment_id: str
    request_data: Mapping[str, Any]
    priority: int
    assessment_type: str
    server_name: str | None
    source: str
    created_by: str


class LeaseStep(StrEnum):
    """What a change does to the attempt's lease, in the same statement."""

    TAKE = "take"  # the claiming worker holds it until now + lease seconds
    RELEASE = "release"  # the attempt is over


@dataclass(frozen=True, slots=True)
class Change:
    """One compare-and-set: the guard (id, state, and version unless None) and what to set."""

    assessment_id: str
    expected_version: int | None
    expected_state: AssessmentState
    event: AssessmentEvent
    values: Mapping[str, object]
    changed_by: str
    change_reason: str
    lease: LeaseStep | None = None
    lease_worker: str | None = None
    lease_seconds: float | None = None


def insert_assessments(conn: Connection, rows: Sequence[NewAssessment]) -> set[str]:
    """Insert new pending rows with their first audit row; return the ids actually inserted.

    Ids that already exist are skipped (ON CONFLICT DO NOTHING) so the caller can decide
    whether a repeat is an idempotent retry or a conflict. One statement for any count.
    """
    if not rows:
        return set()
    result = conn.execute(
        text(
            """
            WITH input AS (
                SELECT * FROM unnest(
                    CAST(:ids AS text[]), CAST(:requests AS jsonb[]),
                    CAST(:priorities AS smallint[]), CAST(:types AS text[]),
                    CAST(:servers AS text[]), CAST(:sources AS text[]),
                    CAST(:creators AS text[])
                ) AS t(assessment_id, request_data, priority, assessment_type,
                       server_name, source, created_by)
            ), inserted AS (
                INSERT INTO assessment_states (
                    assessment_id, state, version, request_data, priority,
                    assessment_type, server_name, source, created_by)
                SELECT assessment_id, 'pending', 1, request_data, priority,
                       assessment_type, server_name, source, created_by
                FROM input
                ON CONFLICT (assessment_id) DO NOTHING
                RETURNING assessment_id, created_by, created_at
            ), audited AS (
                INSERT INTO assessment_state_audit (
                    assessment_id, event, old_state, new_state, version_from, version_to,
                    changed_by, change_reason, created_at)
                SELECT assessment_id, 'create', NULL, 'pending', NULL, 1,
                       created_by, 'created', created_at
                FROM inserted
            )
            SELECT assessment_id,
                   (SELECT pg_notify('assessment_state', '* pending')) AS notified
            FROM inserted
            """
        ),
        {
            "ids": [row.assessment_id for row in rows],
            "requests": [json.dumps(row.request_data) for row in rows],
            "priorities": [row.priority for row in rows],
            "types": [row.assessment_type for row in rows],
            "servers": [row.server_name for row in rows],
            "sources": [row.source for row in rows],
            "creators": [row.created_by for row in rows],
        },
    )
    return {row[0] for row in result}


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
) -> RowMapping | None:
    """The current row, or None (also None when ``created_by`` is given and differs).

    ``for_update`` locks the row until the transaction ends, so a change computed from
    it cannot be overtaken between the read and the write."""
    sql = f"SELECT {ASSESSMENT_COLUMNS} FROM assessment_states WHERE assessment_id = :id"
    params: dict[str, object] = {"id": assessment_id}
    if created_by is not None:
        sql += " AND created_by = :created_by"
        params["created_by"] = created_by
    if for_update:
        sql += " FOR UPDATE"
    return conn.execute(text(sql), params).mappings().first()


def compare_and_set(conn: Connection, change: Change) -> RowMapping | None:
    """Apply ``change`` only if the row is still in the expected state (and version).

    Bumps the version, stamps updated_at, writes the audit row and takes or releases
    the lease, all in one statement. Without an expected version the state guard
    alone decides, which is exact for an event with one source state: a concurrent
    change either commits first (the guard no longer matches) or waits for us.
    Returns the new row, or None when the guard did not match (a stale version,
    another state, or no such row): the caller decides which error that is.
    """
    unknown = set(change.values) - CHANGEABLE_COLUMNS
    if unknown:
        raise ValueError(f"not changeable: {sorted(unknown)}")
    shape = tuple((column, value is NOW) for column, value in change.values.items())
    statement = _cas_statement(shape, change.expected_version is not None, change.lease)
    params: dict[str, object] = {
        "id": change.assessment_id,
        "expected_version": change.expected_version,
        "expected_state": change.expected_state.value,
        "event": change.event.value,
        "changed_by": change.changed_by,
        "change_reason": change.change_reason,
        "lease_worker": change.lease_worker,
        "lease_seconds": change.lease_seconds,
    }
    for column, value in change.values.items():
        if value is NOW:
            continue
        if column == "state":
            params["v_state"] = str(value)
        elif column in JSONB_COLUMNS:
            params[f"v_{column}"] = None if value is None else json.dumps(value)
        else:
            params[f"v_{column}"] = value
    return conn.execute(statement, params).mappings().first()


@lru_cache(maxsize=64)
def _cas_statement(
    shape: tuple[tuple[str, bool], ...], guard_version: bool, lease: LeaseStep | None
) -> TextClause:
    """The compare-and-set SQL for one shape of change, built once and reused."""
    assignments = ["version = version + 1", "updated_at = now()"]
    for column, is_now in shape:
        if is_now:
            assignments.append(f"{column} = now()")
        elif column == "state":
            assignments.append("state = CAST(:v_state AS assessment_state)")
        elif column in JSONB_COLUMNS:
            assignments.append(f"{column} = CAST(:v_{column} AS jsonb)")
        else:
            assignments.append(f"{column} = :v_{column}")
    version_guard = "AND version = :expected_version" if guard_version else ""
    lease_step = ""
    if lease is LeaseStep.TAKE:
        lease_step = """, leased AS (
            INSERT INTO assessment_leases (assessment_id, worker_id, lease_expires_at,
                                           heartbeat_at)
            SELECT assessment_id, :lease_worker,
                   now() + make_interval(secs => :lease_seconds), now()
            FROM changed
            ON CONFLICT (assessment_id) DO UPDATE
            SET worker_id = EXCLUDED.worker_id, lease_expires_at = EXCLUDED.lease_expires_at,
                heartbeat_at = EXCLUDED.heartbeat_at
        )"""
    elif lease is LeaseStep.RELEASE:
        lease_step = """, released AS (
            UPDATE assessment_leases AS l
            SET worker_id = NULL, lease_expires_at = NULL, heartbeat_at = NULL
            FROM changed AS c WHERE l.assessment_id = c.assessment_id
        )"""
    return text(f"""
        WITH changed AS (
            UPDATE assessment_states SET {", ".join(assignments)}
            WHERE assessment_id = :id {version_guard}
              AND state = CAST(:expected_state AS assessment_state)
            RETURNING {ASSESSMENT_COLUMNS}
        ), audited AS (
            INSERT INTO assessment_state_audit (
                assessment_id, event, old_state, new_state, version_from, version_to,
                changed_by, change_reason, created_at)
            SELECT assessment_id, :event, CAST(:expected_state AS assessment_state), state,
                   version - 1, version, :changed_by, :change_reason, updated_at
            FROM changed
        ){lease_step}
        SELECT *, pg_notify('assessment_state', assessment_id || ' ' || state) AS notified
        FROM changed
    """)


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
