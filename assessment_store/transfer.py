"""Moving assessments with their audit trails as JSON lines (``export`` / ``import``).

One line per assessment: the HTTP API's camelCase form of the assessment plus an
``auditTrail`` array. Import validates every line first (JSON, fields, ranges, state
consistency, a whole audit chain, ids unique and not already stored) and writes
nothing unless all lines are good; then it writes everything in one transaction.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Annotated, Any

from pydantic import AwareDatetime, ConfigDict, Field, ValidationError, field_validator

from assessment_store import at_rest
from assessment_store.db import reads, transitions
from assessment_store.errors import ImportRejectedError
from assessment_store.inputs import text_problem
from assessment_store.jsonlines import BadLineError, describe, numbered_lines, parse_line
from assessment_store.models import (
    ASSESSMENT_ID_PATTERN,
    Assessment,
    AssessmentFilters,
    AuditEntry,
    WireModel,
)
from assessment_store.service import AssessmentStore
from assessment_store.states import (
    ENDED_STATES,
    AssessmentEvent,
    AssessmentState,
    is_allowed,
    next_state,
)

EXPORT_PAGE = 500
ProgressCallback = Callable[[int], None]


# PostgreSQL's integer (version, retry_count, the audit versions): a larger number in
# a file must be a bad line, not an error of the whole import's transaction.
MAX_INTEGER = 2**31 - 1
Count = Annotated[int, Field(ge=0, le=MAX_INTEGER)]


class ExportedAuditEntry(WireModel):
    """One audit row as exported (its database id is not portable)."""

    event: str = Field(min_length=1, max_length=64)
    old_state: AssessmentState | None
    new_state: AssessmentState
    version_from: Count | None
    version_to: int = Field(ge=1, le=MAX_INTEGER)
    changed_by: str = Field(min_length=1)
    change_reason: str = Field(min_length=1)
    created_at: AwareDatetime


class ExportedAssessment(Assessment):
    """An assessment line: the assessment and its whole audit trail.

    Stricter than the row it was read from: whatever the database would refuse (or
    store as something else, like a time without a timezone) is refused here, where
    the line's number is known."""

    model_config = ConfigDict(extra="forbid")

    assessment_id: str = Field(pattern=ASSESSMENT_ID_PATTERN.pattern)  # as at creation
    version: int = Field(ge=1, le=MAX_INTEGER)
    progress: int = Field(ge=0, le=100)
    priority: int = Field(ge=1, le=10)
    retry_count: Count
    result_data: dict[str, Any] | None
    next_retry_at: AwareDatetime | None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    started_at: AwareDatetime | None
    completed_at: AwareDatetime | None
    audit_trail: list[ExportedAuditEntry] = Field(min_length=1)

    @field_validator("result_data")
    @classmethod
    def _storable_as_jsonb(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        problem = None if value is None else _jsonb_problem(value)
        if problem:
            raise ValueError(problem)
        return value


def _jsonb_problem(value: object) -> str | None:
    """Why PostgreSQL's jsonb would refuse ``value`` (a NUL or a lone surrogate in
    some key or string), or None. Iterative: json.loads nests deeper than the stack."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending += list(item.keys()) + list(item.values())
        elif isinstance(item, list):
            pending += item
        elif isinstance(item, str) and (problem := text_problem(item)):
            return problem
    return None


def line_for(assessment: Assessment, trail: Sequence[AuditEntry]) -> dict[str, Any]:
    """An assessment and its audit trail as one export line (camelCase, JSON-ready)."""
    line = assessment.to_wire()
    line["auditTrail"] = [
        ExportedAuditEntry.model_validate(
            entry.model_dump(exclude={"id", "assessment_id"})
        ).to_wire()
        for entry in trail
    ]
    return line


def export_lines(
    store: AssessmentStore, filters: AssessmentFilters, progress: ProgressCallback | None = None
) -> Iterator[str]:
    """JSON lines of every assessment matching ``filters``, newest first."""
    cursor = filters.cursor
    exported = 0
    while True:
        page = store.list_assessments(
            filters.model_copy(update={"cursor": cursor, "limit": EXPORT_PAGE})
        )
        trails = store.get_audit_trails([a.assessment_id for a in page.items])
        for assessment in page.items:
            line = line_for(assessment, trails[assessment.assessment_id])
            yield json.dumps(line, separators=(",", ":"))
        exported += len(page.items)
        if progress is not None:
            progress(exported)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


@dataclass
class _Parsed:
    line: int
    assessment: ExportedAssessment


def _allowed_step(entry: ExportedAuditEntry) -> bool:
    """Whether the transition table allows this audit row's change."""
    try:
        event = AssessmentEvent(entry.event)
    except ValueError:
        return False
    return is_allowed(entry.old_state, event) and (
        next_state(entry.old_state, event) is entry.new_state
    )


def _chain_problems(item: ExportedAssessment) -> list[str]:
    problems = []
    trail = sorted(item.audit_trail, key=lambda e: e.version_to)
    first = trail[0]
    if not _allowed_step(first) or (
        first.old_state,
        first.new_state,
        first.version_from,
        first.version_to,
    ) != (None, AssessmentState.PENDING, None, 1):
        problems.append("auditTrail: must start with a create (null -> pending, version 1)")
    for before, after in itertools.pairwise(trail):
        if after.version_from != before.version_to or after.version_to != before.version_to + 1:
            problems.append(f"auditTrail: gap after version {before.version_to}")
            break
        if not _allowed_step(after):
            problems.append(
                f"auditTrail: version {after.version_to} ({after.event}) goes from "
                f"{after.old_state} to {after.new_state}, which the state machine does not allow"
            )
            break
        if after.old_state != before.new_state:
            problems.append(
                f"auditTrail: version {after.version_to} starts from "
                f"{after.old_state}, not {before.new_state}"
            )
            break
    last = trail[-1]
    if (last.new_state, last.version_to) != (item.state, item.version):
        problems.append(
            f"auditTrail: ends at ({last.new_state}, {last.version_to}), not the "
            f"assessment's ({item.state.value}, {item.version})"
        )
    return problems


def _row_problems(item: ExportedAssessment, store: AssessmentStore) -> list[str]:
    problems = []
    if (item.completed_at is not None) != (item.state in ENDED_STATES):
        problems.append("completedAt: must be set exactly when completed, failed or cancelled")
    if item.next_retry_at is not None and item.state is not AssessmentState.FAILED:
        problems.append("nextRetryAt: only a failed assessment can have one")
    if item.started_at is None and item.state in (
        AssessmentState.PROCESSING,
        AssessmentState.COMPLETED,
    ):
        problems.append("startedAt: required once an assessment has run")
    if item.request_data.assessment_type != item.assessment_type:
        problems.append("requestData.assessmentType: differs from assessmentType")
    if not item.is_finished and item.assessment_type not in store.handlers:
        problems.append(
            f"assessmentType: {item.assessment_type!r} has no handler here and "
            "this assessment would still run"
        )
    return problems + _chain_problems(item)


def validate_lines(store: AssessmentStore, content: bytes | str) -> list[_Parsed]:
    """Every line parsed and checked; ImportRejectedError naming each bad line."""
    problems: list[str] = []
    parsed: list[_Parsed] = []
    seen: dict[str, int] = {}
    for number, line in numbered_lines(content):
        try:
            item = ExportedAssessment.model_validate(parse_line(line))
        except BadLineError as exc:
            problems.append(f"line {number}: {exc}")
            continue
        except ValidationError as exc:
            problems.append(f"line {number}: {describe(exc)}")
            continue
        if item.assessment_id in seen:
            problems.append(
                f"line {number}: assessmentId {item.assessment_id!r} repeats line "
                f"{seen[item.assessment_id]}"
            )
            continue
        seen[item.assessment_id] = number
        problems += [f"line {number}: {p}" for p in _row_problems(item, store)]
        parsed.append(_Parsed(number, item))
    if parsed:
        wanted = [p.assessment.assessment_id for p in parsed]
        taken = store.runtime.read(lambda conn: reads.existing_ids(conn, wanted))
        problems += [
            f"line {p.line}: assessmentId {p.assessment.assessment_id!r} already exists"
            for p in parsed
            if p.assessment.assessment_id in taken
        ]
    if problems:
        raise ImportRejectedError(sorted(problems, key=_line_number))
    return parsed


def _line_number(problem: str) -> int:
    return int(problem.split(":", 1)[0].removeprefix("line "))


def import_lines(
    store: AssessmentStore, source: IO[bytes] | IO[str], progress: ProgressCallback | None = None
) -> int:
    """Validate every line, then write all of them in one transaction; the count.

    Read as bytes, each line is decoded on its own: one that is not UTF-8 is a bad
    line like any other, reported by its number."""
    parsed = validate_lines(store, source.read())
    rows = []
    audits = []
    for entry in parsed:
        item = entry.assessment
        wire = item.model_dump(mode="json", exclude={"audit_trail"})
        wire["request_data"] = item.request_data.to_wire()
        wire["state"] = item.state.value
        rows.append(wire)
        audits += [
            transitions.ImportedAudit(assessment_id=item.assessment_id, **dict(e))
            for e in item.audit_trail
        ]
    keys = store.runtime.keys
    if keys is not None:
        rows, audits = at_rest.seal_imported(keys, rows, audits)
    store.runtime.transact(lambda conn: transitions.import_history(conn, rows, audits))
    if store.cache is not None:
        store.cache.forget([row["assessment_id"] for row in rows])
    if progress is not None:
        progress(len(rows))
    return len(rows)
