"""The transition engine: the one function that changes assessment rows.

Every change of an assessment, whatever asks for it (create, claim, progress,
complete, fail, cancel, automatic or manual retry, rescue, import), is one SQL
statement built here by :func:`_statement` from one description. That statement
does all of the following together, so none can happen without the others
(the SQL is in ``statements``):

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
from typing import Any, Final

from sqlalchemy import Connection

from assessment_store.db import prepared, statements
from assessment_store.db.statements import (
    ASSESSMENT_COLUMN_LIST,
    ASSESSMENT_COLUMNS,
    AUDIT_COLUMNS,
    INCREMENT,
    JSONB_COLUMNS,
    NOW,
    SETTABLE_COLUMNS,
    Fixed,
)
from assessment_store.errors import InvalidStateTransitionError
from assessment_store.states import (
    AssessmentEvent,
    AssessmentState,
    TransitionRefusedError,
    intended_state,
    next_state,
)

__all__ = [
    "ASSESSMENT_COLUMNS",
    "ASSESSMENT_COLUMN_LIST",
    "INCREMENT",
    "NOW",
    "Attempt",
    "Fixed",
    "ImportedAudit",
    "NewAssessment",
    "Step",
    "apply",
    "create",
    "import_history",
]

# Steps whose commit need not wait for the disk (synchronous_commit off for that one
# transaction). Losing one in a crash of PostgreSQL (never of a worker: the commit is
# done either way) is harmless: a lost claim leaves the row pending, with its lease
# and audit row gone with it, so the attempt's later writes are refused by their
# guard and the assessment is re-dispatched and run again, its chain whole; a lost
# progress report only loses that report. Anything committed durably afterwards (a
# completion, a failure) flushes the log up to itself, these steps included, so a
# durable outcome never rests on a lost claim. Every other step waits for the disk.
RELAXED_COMMIT_EVENTS: Final = frozenset({AssessmentEvent.START, AssessmentEvent.PROGRESS})


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
) -> list[dict[str, Any]]:
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
    single = len(steps) == 1
    statement = statements.update_statement(
        event, columns, tuple(sorted(fixed.items(), key=lambda kv: kv[0])), moves, single
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
    if single:
        params = {k: v[0] if isinstance(v, list) else v for k, v in params.items()}
    durable = event not in RELAXED_COMMIT_EVENTS
    if not single:
        # A batch (a sweep) is planned once for many rows; its arrays are sent typed
        # (text[]), which a statement prepared for enum arrays would refuse.
        return [dict(row) for row in conn.execute(statement, params).mappings()]
    return prepared.execute(conn, statement, params, durable=durable)


def create(conn: Connection, rows: Sequence[NewAssessment]) -> set[str]:
    """Insert new pending rows (version 1) with their first audit row; the ids actually
    inserted. Ids that already exist are skipped (ON CONFLICT DO NOTHING), so the caller
    can judge an idempotent repeat. One statement for any count."""
    if not rows:
        return set()
    result = conn.execute(
        statements.create_statement(),
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
    return len(list(conn.execute(statements.import_statement(), params)))
