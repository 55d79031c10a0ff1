"""The repository: the only place that issues SQL against the store's tables.

Every change of an assessment row is one compare-and-set statement that also writes
the audit row (a data-modifying CTE), so a change and its audit row are one round
trip and can never be separated. Functions take a Connection inside a transaction
that the service owns; they never commit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
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


def retry_failed(
    conn: Connection,
    *,
    max_retries: int,
    due_only: bool,
    limit: int,
    changed_by: str,
    change_reason: str,
) -> list[RowMapping]:
    """Move failed assessments with retries left back to pending, audited, in one statement.

    Rows are claimed with FOR UPDATE SKIP LOCKED, so two callers at once (two beats)
    split the work instead of retrying anything twice. ``due_only`` keeps to rows
    whose ``next_retry_at`` has passed (the scheduled path); otherwise any failed row
    with retries left is taken (an operator's batch retry).
    """
    due = "AND next_retry_at IS NOT NULL AND next_retry_at <= now()" if due_only else ""
    sql = f"""
        WITH picked AS (
            SELECT assessment_id, version FROM assessment_states
            WHERE state = 'failed' AND retry_count < :max_retries {due}
            ORDER BY priority DESC, completed_at
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
        ), changed AS (
            UPDATE assessment_states AS s
            SET state = 'pending', version = s.version + 1, updated_at = now(),
                retry_count = s.retry_count + 1, next_retry_at = NULL, completed_at = NULL,
                error_message = NULL, progress = 0, message = NULL, worker_id = NULL,
                result_data = NULL
            FROM picked AS p
            WHERE s.assessment_id = p.assessment_id AND s.version = p.version
              AND s.state = 'failed'
            RETURNING {", ".join("s." + c.strip() for c in ASSESSMENT_COLUMNS.split(","))}
        ), audited AS (
            INSERT INTO assessment_state_audit (
                assessment_id, event, old_state, new_state, version_from, version_to,
                changed_by, change_reason, created_at)
            SELECT assessment_id, 'retry', 'failed', 'pending', version - 1, version,
                   :changed_by, :change_reason || ' (attempt ' || (retry_count + 1) || ')',
                   updated_at
            FROM changed
        )
        SELECT *, pg_notify('assessment_state', assessment_id || ' pending') AS notified
        FROM changed
    """
    result = conn.execute(
        text(sql),
        {
            "max_retries": max_retries,
            "limit": limit,
            "changed_by": changed_by,
            "change_reason": change_reason,
        },
    )
    return list(result.mappings())


def delete_finished_before(conn: Connection, cutoff: datetime, limit: int) -> tuple[list[str], int]:
    """Delete up to ``limit`` finished assessments older than ``cutoff`` with their audit rows.

    Finished means completed, cancelled, or failed with no retry scheduled. Returns
    (the ids deleted, audit rows deleted). Rows locked by someone else are skipped.
    """
    row = conn.execute(
        text(
            """
            WITH doomed AS (
                SELECT assessment_id FROM assessment_states
                WHERE completed_at IS NOT NULL AND completed_at < :cutoff
                  AND (state IN ('completed', 'cancelled')
                       OR (state = 'failed' AND next_retry_at IS NULL))
                ORDER BY completed_at
                LIMIT :limit
                FOR UPDATE SKIP LOCKED
            ), audit_count AS (
                SELECT count(*) AS n FROM assessment_state_audit AS a
                JOIN doomed AS d USING (assessment_id)
            ), deleted AS (
                DELETE FROM assessment_states AS s USING doomed AS d
                WHERE s.assessment_id = d.assessment_id
                RETURNING s.assessment_id
            )
            SELECT (SELECT coalesce(array_agg(assessment_id), '{}') FROM deleted),
                   (SELECT n FROM audit_count)
            """
        ),
        {"cutoff": cutoff, "limit": limit},
    ).one()
    return list(row[0]), int(row[1])


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
    if query.after is not None:
        where.append("(created_at, assessment_id) < (:after_at, :after_id)")
        params["after_at"], params["after_id"] = query.after
    clause = ("WHERE " + " AND ".join(where)) if where else ""
    sql = (
        f"SELECT {ASSESSMENT_COLUMNS} FROM assessment_states {clause} "
        "ORDER BY created_at DESC, assessment_id DESC LIMIT :limit"
    )
    return list(conn.execute(text(sql), params).mappings())


def fetch_stats(conn: Connection, *, window_seconds: int, created_by: str | None) -> RowMapping:
    """Counts by state, and completions, failures and run time within the window."""
    owner = "WHERE created_by = :created_by" if created_by is not None else ""
    return (
        conn.execute(
            text(
                f"""
                SELECT
                  count(*) FILTER (WHERE state = 'pending') AS pending,
                  count(*) FILTER (WHERE state = 'processing') AS processing,
                  count(*) FILTER (WHERE state = 'completed') AS completed,
                  count(*) FILTER (WHERE state = 'failed') AS failed,
                  count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
                  count(*) FILTER (WHERE state = 'failed' AND next_retry_at IS NULL)
                    AS dead_letters,
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


def ping(conn: Connection) -> None:
    """A trivial round trip that fails if the server is unreachable."""
    conn.execute(text("SELECT 1"))


def renew_lease(conn: Connection, assessment_id: str, worker_id: str, lease_seconds: float) -> bool:
    """Extend the lease if ``worker_id`` still holds it; False once it does not."""
    result = conn.execute(
        text(
            "UPDATE assessment_leases "
            "SET lease_expires_at = now() + make_interval(secs => :lease), heartbeat_at = now() "
            "WHERE assessment_id = :id AND worker_id = :worker"
        ),
        {"id": assessment_id, "worker": worker_id, "lease": lease_seconds},
    )
    return result.rowcount == 1


def claim_lost_attempts(conn: Connection, limit: int) -> list[RowMapping]:
    """Lock processing rows whose lease has expired (the worker died or hung).

    Both the assessment and its lease row are locked, so a heartbeat that renews the
    lease concurrently either wins (the row no longer qualifies when re-checked) or
    waits; a live, renewing worker is never rescued. Rows locked by another rescuer
    are skipped.
    """
    result = conn.execute(
        text(
            """
            SELECT s.assessment_id, s.version, s.retry_count, l.worker_id AS lease_worker,
                   l.lease_expires_at
            FROM assessment_states AS s
            JOIN assessment_leases AS l USING (assessment_id)
            WHERE s.state = 'processing' AND l.lease_expires_at < now()
            ORDER BY l.lease_expires_at
            LIMIT :limit
            FOR UPDATE OF s, l SKIP LOCKED
            """
        ),
        {"limit": limit},
    )
    return list(result.mappings())


def fail_lost_attempts(
    conn: Connection,
    lost: Sequence[tuple[str, int, datetime | None, str]],
    changed_by: str,
) -> list[str]:
    """processing -> failed for (id, version, next_retry_at, error) rows, audited."""
    if not lost:
        return []
    result = conn.execute(
        text(
            """
            WITH input AS (
                SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:versions AS int[]),
                                     CAST(:retry_ats AS timestamptz[]), CAST(:errors AS text[]))
                    AS t(assessment_id, version, next_retry_at, error)
            ), changed AS (
                UPDATE assessment_states AS s
                SET state = 'failed', version = s.version + 1, updated_at = now(),
                    completed_at = now(), error_message = i.error,
                    next_retry_at = i.next_retry_at
                FROM input AS i
                WHERE s.assessment_id = i.assessment_id AND s.version = i.version
                  AND s.state = 'processing'
                RETURNING s.assessment_id, s.version, s.updated_at, i.error
            ), released AS (
                UPDATE assessment_leases AS l
                SET worker_id = NULL, lease_expires_at = NULL, heartbeat_at = NULL
                FROM changed AS c WHERE l.assessment_id = c.assessment_id
            ), audited AS (
                INSERT INTO assessment_state_audit (
                    assessment_id, event, old_state, new_state, version_from, version_to,
                    changed_by, change_reason, created_at)
                SELECT assessment_id, 'fail', 'processing', 'failed', version - 1, version,
                       :changed_by, 'rescued: ' || error, updated_at
                FROM changed
            )
            SELECT assessment_id, pg_notify('assessment_state', assessment_id || ' failed')
            FROM changed
            """
        ),
        {
            "ids": [row[0] for row in lost],
            "versions": [row[1] for row in lost],
            "retry_ats": [row[2] for row in lost],
            "errors": [row[3] for row in lost],
            "changed_by": changed_by,
        },
    )
    return [row[0] for row in result]


def try_job_lock(conn: Connection, job: str) -> bool:
    """Take this transaction's advisory lock for a singleton job; False if another
    runner (a second beat) holds it. Released at commit or rollback."""
    return bool(
        conn.execute(
            text("SELECT pg_try_advisory_xact_lock(hashtext('assessment_store.' || :job))"),
            {"job": job},
        ).scalar_one()
    )


def claim_stale_pending(conn: Connection, *, after_seconds: float, limit: int) -> list[RowMapping]:
    """Pending rows not (re-)published for ``after_seconds``, highest priority and oldest
    first; marks them dispatched now. Run under :func:`try_job_lock`."""
    result = conn.execute(
        text(
            """
            WITH picked AS (
                SELECT s.assessment_id, s.priority, s.request_data, s.updated_at
                FROM assessment_states AS s
                LEFT JOIN assessment_leases AS l USING (assessment_id)
                WHERE s.state = 'pending'
                  AND s.updated_at < now() - make_interval(secs => :after)
                  AND (l.dispatched_at IS NULL
                       OR l.dispatched_at < now() - make_interval(secs => :after))
                ORDER BY s.priority DESC, s.updated_at
                LIMIT :limit
            ), marked AS (
                INSERT INTO assessment_leases (assessment_id, dispatched_at, dispatch_count)
                SELECT assessment_id, now(), 1 FROM picked
                ON CONFLICT (assessment_id) DO UPDATE
                SET dispatched_at = now(),
                    dispatch_count = assessment_leases.dispatch_count + 1
            )
            SELECT assessment_id, priority, request_data FROM picked
            ORDER BY priority DESC, updated_at
            """
        ),
        {"after": after_seconds, "limit": limit},
    )
    return list(result.mappings())


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


IMPORTED_COLUMNS: Final = (
    "assessment_id",
    "state",
    "version",
    "request_data",
    "result_data",
    "error_message",
    "progress",
    "message",
    "priority",
    "assessment_type",
    "server_name",
    "source",
    "created_by",
    "retry_count",
    "next_retry_at",
    "worker_id",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
)


def insert_imported(
    conn: Connection,
    assessments: Sequence[Mapping[str, Any]],
    audit_rows: Sequence[Mapping[str, Any]],
) -> None:
    """Insert assessments exactly as exported (state, version, timestamps) and their
    audit rows. Running ones get an already-expired lease, so rescue retries them."""
    if not assessments:
        return
    conn.execute(
        text(
            f"INSERT INTO assessment_states ({', '.join(IMPORTED_COLUMNS)}) VALUES ("
            + ", ".join(
                f"CAST(:{c} AS jsonb)"
                if c in ("request_data", "result_data")
                else f"CAST(:{c} AS assessment_state)"
                if c == "state"
                else f":{c}"
                for c in IMPORTED_COLUMNS
            )
            + ")"
        ),
        [
            {
                **{c: row[c] for c in IMPORTED_COLUMNS},
                "request_data": json.dumps(row["request_data"]),
                "result_data": None
                if row["result_data"] is None
                else json.dumps(row["result_data"]),
            }
            for row in assessments
        ],
    )
    conn.execute(
        text(
            "INSERT INTO assessment_state_audit (assessment_id, event, old_state, new_state, "
            "version_from, version_to, changed_by, change_reason, created_at) VALUES "
            "(:assessment_id, :event, CAST(:old_state AS assessment_state), "
            "CAST(:new_state AS assessment_state), :version_from, :version_to, :changed_by, "
            ":change_reason, :created_at)"
        ),
        list(audit_rows),
    )
    running = [row["assessment_id"] for row in assessments if row["state"] == "processing"]
    if running:
        conn.execute(
            text(
                "INSERT INTO assessment_leases (assessment_id, worker_id, lease_expires_at) "
                "SELECT id, 'imported', now() FROM unnest(CAST(:ids AS text[])) AS id "
                "ON CONFLICT (assessment_id) DO NOTHING"
            ),
            {"ids": running},
        )
