"""The SQL of the transition engine (see ``transitions``): one statement shape for
every change of an assessment, built by :func:`statement`, with the only INSERT into
the audit table in the code."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Final

from sqlalchemy import TextClause, text

from assessment_store.states import ENDED_STATES, AssessmentEvent, AssessmentState

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
AUDIT_INSERT: Final = (
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


def statement(
    *, inputs: str, head: str, audit_rows: str, extra: Sequence[str] = (), result: str
) -> TextClause:
    """The one shape of every change: input rows, the row change (``changed``), its
    audit rows (written by the one audit INSERT), optional lease steps, and a result
    (which sends the notifications)."""
    ctes = [
        f"input AS ({inputs})",
        f"changed AS ({head})",
        f"audit_rows AS ({audit_rows})",
        f"audited AS ({AUDIT_INSERT})",
        *extra,
    ]
    return text("WITH " + ",\n".join(ctes) + "\n" + result)


def _one_row(columns: Sequence[tuple[str, str, str]]) -> str:
    """SELECT CAST(:param AS type) AS name, ...: the input of a single change (cheaper
    to plan than an unnest, and the planner knows it is one row)."""
    return "SELECT " + ", ".join(
        f"CAST(:{param} AS {sql_type}) AS {name}" for param, sql_type, name in columns
    )


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
def update_statement(
    event: AssessmentEvent,
    columns: tuple[str, ...],
    fixed: tuple[tuple[str, Fixed], ...],
    moves: frozenset[tuple[AssessmentState, AssessmentState]],
    single: bool,
) -> TextClause:
    """The compare-and-set for one shape of transition, built once and reused.
    ``single``: the parameters are one step's scalars, not arrays of a batch."""
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
        # The lease runs from when the claim is written (clock_timestamp), not from its
        # transaction's start (now()): a claim that waited for a lock gets its whole lease.
        extra.append(
            """leased AS (
            INSERT INTO assessment_leases (assessment_id, worker_id, lease_expires_at,
                                           heartbeat_at)
            SELECT assessment_id, worker_id,
                   clock_timestamp() + make_interval(secs => :lease_seconds), now()
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
    return statement(
        inputs=_one_row(arrays) if single else _unnest(arrays),
        head=head,
        audit_rows=audit_rows,
        extra=extra,
        result=_notify_each("changed"),
    )


@lru_cache(maxsize=1)
def create_statement() -> TextClause:
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
    return statement(inputs=_unnest(arrays), head=head, audit_rows=audit_rows, result=result)


@lru_cache(maxsize=1)
def import_statement() -> TextClause:
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
    return statement(
        inputs=_unnest(arrays),
        head=head,
        audit_rows=audit_rows,
        extra=[expired_leases],
        result=result,
    )
