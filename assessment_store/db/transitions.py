"""The transition engine: the one function that changes assessment rows.

Every change of an assessment, whatever asks for it (create, claim, progress,
complete, fail, cancel, automatic or manual retry, rescue, import), is one SQL
statement built here by :func:`_statement` from one description. That statement
does all of the following together, so none can happen without the others:

- the compare-and-set guard: the row is still in the step's source state, at the
  expected version when one is given, and still owned by the expected attempt when
  one is given;
- the new state, which the transition table (``states.next_state``) decides;
- the version bump and ``updated_at``;
- ``completed_at`` (set on entering an ended state, cleared on leaving one);
- the audit row (the only ``INSERT`` into the audit table in the code);
- the lease step (taken on a claim, released when an attempt ends);
- the change notification (``pg_notify``, delivered on commit).

A batch is one statement too: each step is a row of an ``unnest`` input, so a sweep
that retries a thousand failures is as exact as a single change. Steps whose guard
does not match are simply not returned: the caller decides which error that is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

from sqlalchemy import Connection, RowMapping, TextClause, text

from assessment_store.errors import InvalidStateTransitionError
from assessment_store.states import (
    ENDED_STATES,
    AssessmentEvent,
    AssessmentState,
    TransitionRefusedError,
    intended_state,
    next_state,
)

CHANNEL: Final = "assessment_state"

ASSESSMENT_COLUMNS: Final = (
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
ASSESSMENT_COLUMN_LIST: Final = ", ".join(ASSESSMENT_COLUMNS)

# Columns a transition may set, with their SQL type (for the unnest input arrays).
SETTABLE_COLUMNS: Final = {
    "result_data": "jsonb",
    "error_message": "text",
    "progress": "smallint",
    "message": "text",
    "retry_count": "integer",
    "next_retry_at": "timestamptz",
    "worker_id": "text",
    "started_at": "timestamptz",
}
JSONB_COLUMNS: Final = frozenset(c for c, t in SETTABLE_COLUMNS.items() if t == "jsonb")

AUDIT_COLUMNS: Final = (
    "assessment_id, event, old_state, new_state, version_from, version_to, "
    "changed_by, change_reason, created_at"
)
# The one INSERT into the audit table: every statement below feeds it an ``audit_rows``
# relation with AUDIT_COLUMNS.
_AUDIT_INSERT: Final = (
    f"INSERT INTO assessment_state_audit ({AUDIT_COLUMNS}) SELECT {AUDIT_COLUMNS} FROM audit_rows"
)


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


# Fixed values a transition can give a column for every row of a batch.
NOW: Final = _Marker("NOW")  # the transaction's now()
INCREMENT: Final = _Marker("INCREMENT")  # the column's current value + 1
Fixed = _Marker | int | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """Which attempt a step must still belong to: the claiming worker and the row's
    retry count at the claim. Guards a running attempt's own writes, so a write that
    was interrupted (a time limit striking mid-statement) cannot strand the others."""

    worker_id: str
    retry_count: int


@dataclass(frozen=True, slots=True)
class Step:
    """One row's part of a transition: its guard, its own values, and who and why."""

    assessment_id: str
    source: AssessmentState
    changed_by: str
    reason: str
    expected_version: int | None = None
    attempt: Attempt | None = None
    values: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewAssessment:
    """One row to create: the validated request in its stored (camelCase JSON) form."""

    assessment_id: str
    request_data: Mapping[str, Any]
    priority: int
    assessment_type: str
    server_name: str | None
    source: str
    created_by: str


def apply(
    conn: Connection,
    event: AssessmentEvent,
    steps: Sequence[Step],
    *,
    fixed: Mapping[str, Fixed] | None = None,
    lease_seconds: float | None = None,
) -> list[RowMapping]:
    """Apply ``event`` to every step whose guard matches; the changed rows.

    ``fixed`` gives columns the same value for every row (NOW, INCREMENT, None or an
    integer); each step's ``values`` give the rest (the same columns for every step).
    A claim (pending -> processing) takes a lease of ``lease_seconds``. A step whose
    source state does not allow ``event`` raises InvalidStateTransitionError before
    anything is written.
    """
    if not steps:
        return []
    fixed = dict(fixed or {})
    columns = tuple(steps[0].values)
    unknown = (set(columns) | set(fixed)) - set(SETTABLE_COLUMNS)
    if unknown or set(columns) & set(fixed):
        raise ValueError(f"not settable, or set twice: {sorted(unknown or set(columns))}")
    targets = []
    for step in steps:
        if tuple(step.values) != columns:
            raise ValueError("every step of a batch must set the same columns")
        try:
            targets.append(next_state(step.source, event))
        except TransitionRefusedError:
            raise InvalidStateTransitionError(
                step.assessment_id, step.source.value, intended_state(event).value
            ) from None
    moves = frozenset(zip((s.source for s in steps), targets, strict=True))
    statement = _update_statement(
        event, columns, tuple(sorted(fixed.items(), key=lambda kv: kv[0])), moves
    )
    params: dict[str, object] = {
        "event": event.value,
        "lease_seconds": lease_seconds,
        "ids": [s.assessment_id for s in steps],
        "sources": [s.source.value for s in steps],
        "targets": [t.value for t in targets],
        "versions": [s.expected_version for s in steps],
        "attempt_workers": [s.attempt.worker_id if s.attempt else None for s in steps],
        "attempt_retries": [s.attempt.retry_count if s.attempt else None for s in steps],
        "changed_by": [s.changed_by for s in steps],
        "reasons": [s.reason for s in steps],
    }
    for column in columns:
        values = [s.values[column] for s in steps]
        if column in JSONB_COLUMNS:
            values = [None if v is None else json.dumps(v) for v in values]
        params[f"v_{column}"] = values
    return list(conn.execute(statement, params).mappings())


def create(conn: Connection, rows: Sequence[NewAssessment]) -> set[str]:
    """Insert new pending rows (version 1) with their first audit row; the ids actually
    inserted. Ids that already exist are skipped (ON CONFLICT DO NOTHING), so the caller
    can judge an idempotent repeat. One statement for any count."""
    if not rows:
        return set()
    result = conn.execute(
        _create_statement(),
        {
            "target": next_state(None, AssessmentEvent.CREATE).value,
            "event": AssessmentEvent.CREATE.value,
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


@dataclass(frozen=True, slots=True)
class ImportedAudit:
    """One audit row of an imported history, as exported."""

    assessment_id: str
    event: str
    old_state: AssessmentState | None
    new_state: AssessmentState
    version_from: int | None
    version_to: int
    changed_by: str
    change_reason: str
    created_at: datetime


def import_history(
    conn: Connection, rows: Sequence[Mapping[str, Any]], audit: Sequence[ImportedAudit]
) -> int:
    """Insert assessments exactly as exported (state, version, timestamps) with their
    audit rows; running ones get an already-expired lease, so rescue retries them.

    The histories were checked against the transition table before (see transfer)."""
    if not rows:
        return 0
    params: dict[str, object] = {
        f"a_{column}": [
            json.dumps(row[column])
            if column in ("request_data", "result_data") and row[column] is not None
            else row[column]
            for row in rows
        ]
        for column in ASSESSMENT_COLUMNS
    }
    for name in AUDIT_COLUMNS.split(", "):
        params[f"h_{name}"] = [
            value.value if isinstance(value, AssessmentState) else value
            for value in (getattr(entry, name) for entry in audit)
        ]
    return len(list(conn.execute(_import_statement(), params)))


# -- statements ------------------------------------------------------------------


def _statement(
    *, inputs: str, head: str, audit_rows: str, extra: Sequence[str] = (), result: str
) -> TextClause:
    """The one shape of every change: input rows, the row change (``changed``), its
    audit rows (written by the one audit INSERT), optional lease steps, and a result
    (which sends the notifications)."""
    ctes = [
        f"input AS ({inputs})",
        f"changed AS ({head})",
        f"audit_rows AS ({audit_rows})",
        f"audited AS ({_AUDIT_INSERT})",
        *extra,
    ]
    return text("WITH " + ",\n".join(ctes) + "\n" + result)


def _unnest(arrays: Sequence[tuple[str, str, str]]) -> str:
    """SELECT * FROM unnest(CAST(:param AS type[]), ...) AS i(name, ...)."""
    casts = ", ".join(f"CAST(:{param} AS {sql_type}[])" for param, sql_type, _ in arrays)
    names = ", ".join(name for _, _, name in arrays)
    return f"SELECT * FROM unnest({casts}) AS i({names})"


def _notify_each(relation: str) -> str:
    return (
        f"SELECT {ASSESSMENT_COLUMN_LIST}, "
        f"pg_notify('{CHANNEL}', assessment_id || ' ' || state) AS notified FROM {relation}"
    )


def _assignment(column: str, value: Fixed) -> str:
    if value is NOW:
        return f"{column} = now()"
    if value is INCREMENT:
        return f"{column} = s.{column} + 1"
    if value is None:
        return f"{column} = NULL"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{column} = {int(value)}"
    raise ValueError(f"{column}: not a fixed value: {value!r}")


@lru_cache(maxsize=128)
def _update_statement(
    event: AssessmentEvent,
    columns: tuple[str, ...],
    fixed: tuple[tuple[str, Fixed], ...],
    moves: frozenset[tuple[AssessmentState, AssessmentState]],
) -> TextClause:
    """The compare-and-set for one shape of transition, built once and reused."""
    arrays = [
        ("ids", "text", "assessment_id"),
        ("sources", "assessment_state", "source_state"),
        ("targets", "assessment_state", "target_state"),
        ("versions", "integer", "expected_version"),
        ("attempt_workers", "text", "attempt_worker"),
        ("attempt_retries", "integer", "attempt_retry"),
        ("changed_by", "text", "changed_by"),
        ("reasons", "text", "reason"),
        *((f"v_{c}", SETTABLE_COLUMNS[c], f"v_{c}") for c in columns),
    ]
    assignments = ["state = i.target_state", "version = s.version + 1", "updated_at = now()"]
    assignments += [f"{c} = i.v_{c}" for c in columns]
    assignments += [_assignment(c, v) for c, v in fixed]
    if any((s in ENDED_STATES) != (t in ENDED_STATES) for s, t in moves):
        # completed_at is set exactly while the state is an ended one (SPEC section 3):
        # stamped on entering one, cleared on leaving (a retry).
        ended = ", ".join(f"'{state.value}'" for state in sorted(ENDED_STATES))
        assignments.append(
            f"completed_at = CASE WHEN i.target_state IN ({ended}) THEN now() ELSE NULL END"
        )
    returned = ", ".join(f"s.{c}" for c in ASSESSMENT_COLUMNS)
    head = f"""
        UPDATE assessment_states AS s SET {", ".join(assignments)}
        FROM input AS i
        WHERE s.assessment_id = i.assessment_id AND s.state = i.source_state
          AND (i.expected_version IS NULL OR s.version = i.expected_version)
          AND (i.attempt_worker IS NULL
               OR (s.worker_id = i.attempt_worker AND s.retry_count = i.attempt_retry))
        RETURNING {returned}, i.source_state, i.changed_by AS audit_by, i.reason AS audit_reason
    """
    audit_rows = (
        "SELECT assessment_id, CAST(:event AS text) AS event, source_state AS old_state, "
        "state AS new_state, version - 1 AS version_from, version AS version_to, "
        "audit_by AS changed_by, audit_reason AS change_reason, updated_at AS created_at "
        "FROM changed"
    )
    extra = []
    processing = AssessmentState.PROCESSING
    if any(s is AssessmentState.PENDING and t is processing for s, t in moves):
        extra.append(
            """leased AS (
            INSERT INTO assessment_leases (assessment_id, worker_id, lease_expires_at,
                                           heartbeat_at)
            SELECT assessment_id, worker_id, now() + make_interval(secs => :lease_seconds), now()
            FROM changed WHERE state = 'processing'
            ON CONFLICT (assessment_id) DO UPDATE
            SET worker_id = EXCLUDED.worker_id, lease_expires_at = EXCLUDED.lease_expires_at,
                heartbeat_at = EXCLUDED.heartbeat_at)"""
        )
    if any(s is processing and t is not processing for s, t in moves):
        extra.append(
            """released AS (
            UPDATE assessment_leases AS l
            SET worker_id = NULL, lease_expires_at = NULL, heartbeat_at = NULL
            FROM changed AS c
            WHERE l.assessment_id = c.assessment_id AND c.source_state = 'processing'
              AND c.state <> 'processing')"""
        )
    return _statement(
        inputs=_unnest(arrays),
        head=head,
        audit_rows=audit_rows,
        extra=extra,
        result=_notify_each("changed"),
    )


@lru_cache(maxsize=1)
def _create_statement() -> TextClause:
    arrays = [
        ("ids", "text", "assessment_id"),
        ("requests", "jsonb", "request_data"),
        ("priorities", "smallint", "priority"),
        ("types", "text", "assessment_type"),
        ("servers", "text", "server_name"),
        ("sources", "text", "source"),
        ("creators", "text", "created_by"),
    ]
    head = """
        INSERT INTO assessment_states (
            assessment_id, state, version, request_data, priority,
            assessment_type, server_name, source, created_by)
        SELECT assessment_id, CAST(:target AS assessment_state), 1, request_data, priority,
               assessment_type, server_name, source, created_by
        FROM input
        ON CONFLICT (assessment_id) DO NOTHING
        RETURNING assessment_id, state, version, created_by, created_at
    """
    audit_rows = (
        "SELECT assessment_id, CAST(:event AS text) AS event, "
        "CAST(NULL AS assessment_state) AS old_state, state AS new_state, "
        "CAST(NULL AS integer) AS version_from, version AS version_to, "
        "created_by AS changed_by, CAST('created' AS text) AS change_reason, created_at "
        "FROM changed"
    )
    # One notification per batch: waiters for new rows do not exist yet, and
    # subscribers re-read the audit table on any wake-up.
    result = (
        f"SELECT assessment_id, (SELECT pg_notify('{CHANNEL}', '* ' || :target)) AS notified "
        "FROM changed"
    )
    return _statement(inputs=_unnest(arrays), head=head, audit_rows=audit_rows, result=result)


@lru_cache(maxsize=1)
def _import_statement() -> TextClause:
    types = {
        "state": "assessment_state",
        "version": "integer",
        "request_data": "jsonb",
        "priority": "smallint",
        "retry_count": "integer",
        "created_at": "timestamptz",
        "updated_at": "timestamptz",
        "created_by": "text",
        **SETTABLE_COLUMNS,
        "completed_at": "timestamptz",
    }
    arrays = [(f"a_{c}", types.get(c, "text"), c) for c in ASSESSMENT_COLUMNS]
    head = (
        f"INSERT INTO assessment_states ({ASSESSMENT_COLUMN_LIST}) "
        f"SELECT {ASSESSMENT_COLUMN_LIST} FROM input RETURNING assessment_id, state"
    )
    audit_types = {
        "old_state": "assessment_state",
        "new_state": "assessment_state",
        "version_from": "integer",
        "version_to": "integer",
        "created_at": "timestamptz",
    }
    names = AUDIT_COLUMNS.split(", ")
    history = _unnest([(f"h_{n}", audit_types.get(n, "text"), n) for n in names])
    audit_rows = f"SELECT h.* FROM ({history}) AS h JOIN changed AS c USING (assessment_id)"
    expired_leases = """leased AS (
        INSERT INTO assessment_leases (assessment_id, worker_id, lease_expires_at)
        SELECT assessment_id, 'imported', now() FROM changed WHERE state = 'processing'
        ON CONFLICT (assessment_id) DO NOTHING)"""
    result = (
        f"SELECT assessment_id, (SELECT pg_notify('{CHANNEL}', '* imported')) AS notified "
        "FROM changed"
    )
    return _statement(
        inputs=_unnest(arrays),
        head=head,
        audit_rows=audit_rows,
        extra=[expired_leases],
        result=result,
    )
