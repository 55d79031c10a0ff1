"""Changing assessments: claim, progress, complete, fail, cancel, retry and rescue.

Each use case describes its change as transition steps and hands them to
:func:`transition`, which runs them through the one engine (``db.transitions``) in a
transaction, then records the transition metrics and refreshes the cache: the one
place both happen. What each event sets (the retry reset, a failure's next retry)
is defined once here and shared by single changes and maintenance sweeps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, RowMapping

from assessment_store import at_rest, metrics, policy
from assessment_store.bootstrap import Runtime
from assessment_store.config import Settings
from assessment_store.db import repository, transitions
from assessment_store.db.transitions import INCREMENT, NOW, Attempt, Fixed, Step
from assessment_store.errors import (
    AssessmentNotFoundError,
    AttemptSupersededError,
    InvalidStateTransitionError,
    VersionConflictError,
)
from assessment_store.inputs import (
    MAX_MESSAGE_CHARS,
    check_expected_version,
    check_lookup_id,
    check_progress,
    check_result,
    check_text,
    clip_error,
)
from assessment_store.models import FROM_DATABASE, Assessment
from assessment_store.states import AssessmentEvent, AssessmentState, intended_state, sources_of

SYSTEM_ACTOR: Final = "system"
RESCUE_ACTOR: Final = "maintenance.rescue"

# A retry starts the next attempt from scratch.
RETRY_RESETS: Final[Mapping[str, Fixed]] = {
    "retry_count": INCREMENT,
    "next_retry_at": None,
    "error_message": None,
    "progress": 0,
    "message": None,
    "worker_id": None,
    "result_data": None,
}
Plan = Callable[[Connection], Sequence[Step]]
ATTEMPT_ENDINGS: Final = frozenset({AssessmentEvent.COMPLETE, AssessmentEvent.FAIL})


def to_assessment(row: Mapping[str, Any] | RowMapping) -> Assessment:
    """A repository row as the public model."""
    return Assessment.model_validate(dict(row), context=FROM_DATABASE)


def transition(
    runtime: Runtime,
    event: AssessmentEvent,
    plan: Plan | Sequence[Step],
    *,
    fixed: Mapping[str, Fixed] | None = None,
    explain: Callable[[Connection], Exception] | None = None,
) -> list[Assessment]:
    """Run the steps through the engine; the changed rows.

    ``plan`` is either the steps themselves, known without reading anything (the
    engine's one statement is then the whole change, run as its own transaction), or
    a function that reads (and locks) rows to decide them, run with the change in
    one transaction. ``explain`` turns a step whose guard did not match into the
    error to raise (single changes); without it such steps are skipped (sweeps,
    where losing a race is fine).
    """

    keys = runtime.keys

    def work(conn: Connection) -> tuple[Sequence[Step], list[at_rest.Row]]:
        steps = plan if isinstance(plan, Sequence) else plan(conn)
        stored = steps if keys is None else [at_rest.seal_step(keys, event, s) for s in steps]
        rows = transitions.apply(
            conn, event, stored, fixed=fixed, lease_seconds=runtime.settings.lease_seconds
        )
        if explain is not None and len(rows) < len(steps):
            raise explain(conn)
        # Opened before the commit: a row this process cannot decrypt undoes the change.
        return steps, [at_rest.open_row(keys, row) for row in rows]

    # With encryption on, every change is a transaction of its own (not one autocommit
    # statement), so that a value it cannot decrypt rolls it back (see at_rest).
    one = keys is None and _one_statement(event, plan)
    run = runtime.write_one if one else runtime.transact
    steps, rows = run(work)
    changed = [to_assessment(row) for row in rows]
    if event is not AssessmentEvent.PROGRESS:
        sources = {step.assessment_id: step.source for step in steps}
        moves = Counter((sources[a.assessment_id].value, a.state.value) for a in changed)
        for (source, target), count in moves.items():
            metrics.TRANSITIONS.labels(source, target).inc(count)
    if runtime.cache is not None:
        for assessment in changed:
            runtime.cache.put(assessment)
    return changed


def _one_statement(event: AssessmentEvent, plan: Plan | Sequence[Step]) -> bool:
    """Whether the change may run as one statement in its own transaction.

    Not when a running attempt ends itself (complete, fail): a time limit that strikes
    while that statement waits (on a row lock, on the disk) must undo it, which only a
    transaction still open in Python allows (the limit's exception arrives before
    COMMIT). A claim or a progress report landing after the limit is harmless: the
    limit's handler then fails the attempt it finds running."""
    if not isinstance(plan, Sequence):
        return False
    return not (event in ATTEMPT_ENDINGS and any(step.attempt for step in plan))


def change_one(
    runtime: Runtime,
    assessment_id: str,
    event: AssessmentEvent,
    *,
    changed_by: str,
    reason: str,
    values: Mapping[str, object] | Callable[[Mapping[str, Any]], Mapping[str, object]],
    fixed: Mapping[str, Fixed] | None = None,
    expected_version: int | None = None,
    owner: str | None = None,
    attempt: Attempt | None = None,
) -> Assessment:
    """One change of one assessment, or the error that says why it was refused.

    An event with a single source state whose values do not depend on the row needs
    no read first: the engine's guard is the check, and only a refusal costs a second
    query (to say why). Otherwise the row is read and locked (a concurrent progress
    report waits for us instead of failing our write as a stale version), checked
    against the transition table, and changed under its version.
    """
    assessment_id = check_lookup_id(assessment_id)
    expected_version = check_expected_version(expected_version)
    [source, *others] = sources_of(event)

    def plan(conn: Connection) -> list[Step]:
        row = repository.fetch_assessment(conn, assessment_id, created_by=owner, for_update=True)
        if row is None:
            raise AssessmentNotFoundError(assessment_id)
        current = AssessmentState(row["state"])
        if expected_version is not None and row["version"] != expected_version:
            raise VersionConflictError(assessment_id, expected_version, row["version"])
        step = Step(assessment_id, current, changed_by, reason, row["version"], attempt)
        return [_with_values(step, values(row) if callable(values) else values)]

    def explain(conn: Connection) -> Exception:
        return _refusal(conn, assessment_id, event, expected_version, attempt)

    if not others and source is not None and owner is None and not callable(values):
        step = Step(assessment_id, source, changed_by, reason, expected_version, attempt, values)
        [changed] = transition(runtime, event, [step], fixed=fixed, explain=explain)
    else:
        [changed] = transition(runtime, event, plan, fixed=fixed, explain=explain)
    return changed


def _with_values(step: Step, values: Mapping[str, object]) -> Step:
    return Step(
        step.assessment_id,
        step.source,
        step.changed_by,
        step.reason,
        step.expected_version,
        step.attempt,
        values,
    )


def _refusal(
    conn: Connection,
    assessment_id: str,
    event: AssessmentEvent,
    expected: int | None,
    attempt: Attempt | None,
) -> Exception:
    """The guard did not match: say why (a stale version first, then the state, then
    the attempt)."""
    fresh = repository.fetch_assessment(conn, assessment_id)
    return refusal(fresh, assessment_id, event, expected, attempt)


def refusal(
    fresh: Mapping[str, Any] | None,
    assessment_id: str,
    event: AssessmentEvent,
    expected: int | None,
    attempt: Attempt | None,
) -> Exception:
    """Why a step whose guard did not match was refused, from the row as it is now
    (``fresh``, None when there is none)."""
    if fresh is None:
        return AssessmentNotFoundError(assessment_id)
    if expected is not None and fresh["version"] != expected:
        return VersionConflictError(assessment_id, expected, fresh["version"])
    state = AssessmentState(fresh["state"])
    if state not in sources_of(event):
        return InvalidStateTransitionError(assessment_id, state.value, intended_state(event).value)
    if attempt is not None:
        return AttemptSupersededError(
            f"assessment {assessment_id!r} is now run by {fresh['worker_id']} "
            f"(attempt {fresh['retry_count'] + 1}); this attempt no longer owns it"
        )
    # It moved away and back (failed -> pending) between our look and our write.
    return VersionConflictError(assessment_id, expected or fresh["version"], fresh["version"])


# -- what each event sets ----------------------------------------------------------


def failure_values(
    settings: Settings, retry_count: int, error: str, *, permanent: bool
) -> dict[str, object]:
    """A failed attempt's columns: the error and, while retries remain, the next retry."""
    return {
        "error_message": error,
        "next_retry_at": policy.next_retry_at(
            settings, retry_count, datetime.now(UTC), permanent=permanent
        ),
    }


def retry_reason(label: str, retry_count: int) -> str:
    """Audit reason of a retry of a row at ``retry_count`` (its next attempt's number)."""
    return f"{label} (attempt {retry_count + 2})"


# -- the use cases -----------------------------------------------------------------


def claim(
    runtime: Runtime, assessment_id: str, worker_id: str, *, expected_version: int | None = None
) -> Assessment:
    """pending -> processing for ``worker_id``, with a lease."""
    worker_id = check_text("workerId", worker_id, max_chars=255, required=True) or ""
    return change_one(
        runtime,
        assessment_id,
        AssessmentEvent.START,
        changed_by=worker_id,
        reason=f"claimed by {worker_id}",
        values={"worker_id": worker_id, "message": None},
        fixed={"started_at": NOW, "progress": 0},
        expected_version=expected_version,
    )


def report_progress(
    runtime: Runtime,
    assessment_id: str,
    progress: object,
    message: str | None,
    *,
    changed_by: str,
    expected_version: int | None = None,
    attempt: Attempt | None = None,
) -> Assessment:
    """Progress (0-100) of a processing assessment; audited like any change."""
    reason, values = progress_change(progress, message)
    return change_one(
        runtime,
        assessment_id,
        AssessmentEvent.PROGRESS,
        changed_by=changed_by,
        reason=reason,
        values=values,
        expected_version=expected_version,
        attempt=attempt,
    )


def progress_change(progress: object, message: object) -> tuple[str, dict[str, object]]:
    """A progress report's audit reason and values, its arguments checked."""
    percent = check_progress(progress)
    text = check_text("message", message, max_chars=MAX_MESSAGE_CHARS, required=False)
    return f"progress {percent}%" + (f": {text}" if text else ""), {
        "progress": percent,
        "message": text,
    }


def complete(
    runtime: Runtime,
    assessment_id: str,
    result: Mapping[str, Any] | Any,
    *,
    changed_by: str,
    expected_version: int | None = None,
    attempt: Attempt | None = None,
) -> Assessment:
    """processing -> completed with ``result`` as result_data."""
    return change_one(
        runtime,
        assessment_id,
        AssessmentEvent.COMPLETE,
        changed_by=changed_by,
        reason="completed",
        values={"result_data": check_result(result)},
        fixed={"progress": 100},
        expected_version=expected_version,
        attempt=attempt,
    )


def fail(
    runtime: Runtime,
    assessment_id: str,
    error: str,
    *,
    permanent: bool,
    changed_by: str,
    expected_version: int | None = None,
    attempt: Attempt | None = None,
) -> Assessment:
    """processing -> failed; a retry is scheduled by the policy unless ``permanent``.

    A running attempt knows its retry count; anyone else's failure reads the row."""
    text = clip_error("error", error)
    kind = "permanent failure" if permanent else "failed"
    settings = runtime.settings
    values: Mapping[str, object] | Callable[[Mapping[str, Any]], Mapping[str, object]]
    if attempt is not None:
        values = failure_values(settings, attempt.retry_count, text, permanent=permanent)
    else:

        def values(row: Mapping[str, Any]) -> Mapping[str, object]:
            return failure_values(settings, row["retry_count"], text, permanent=permanent)

    return change_one(
        runtime,
        assessment_id,
        AssessmentEvent.FAIL,
        changed_by=changed_by,
        reason=f"{kind}: {text}",
        values=values,
        expected_version=expected_version,
        attempt=attempt,
    )


def cancel(
    runtime: Runtime,
    assessment_id: str,
    reason: str | None,
    *,
    changed_by: str,
    owner: str | None = None,
    expected_version: int | None = None,
) -> Assessment:
    """pending or processing -> cancelled."""
    text = check_text("reason", reason, max_chars=MAX_MESSAGE_CHARS, required=False)
    return change_one(
        runtime,
        assessment_id,
        AssessmentEvent.CANCEL,
        changed_by=changed_by,
        reason="cancelled" + (f": {text}" if text else ""),
        values={"message": text},
        expected_version=expected_version,
        owner=owner,
    )


def retry(
    runtime: Runtime,
    assessment_id: str,
    *,
    changed_by: str,
    owner: str | None = None,
    expected_version: int | None = None,
) -> Assessment:
    """failed -> pending now, also when the automatic retries are used up."""
    assessment_id = check_lookup_id(assessment_id)
    expected_version = check_expected_version(expected_version)

    def plan(conn: Connection) -> list[Step]:
        row = repository.fetch_assessment(conn, assessment_id, created_by=owner, for_update=True)
        if row is None:
            raise AssessmentNotFoundError(assessment_id)
        if expected_version is not None and row["version"] != expected_version:
            raise VersionConflictError(assessment_id, expected_version, row["version"])
        reason = retry_reason(f"retried by {changed_by}", row["retry_count"])
        state = AssessmentState(row["state"])
        return [Step(assessment_id, state, changed_by, reason, row["version"])]

    def explain(conn: Connection) -> Exception:
        return _refusal(conn, assessment_id, AssessmentEvent.RETRY, expected_version, None)

    [changed] = transition(
        runtime, AssessmentEvent.RETRY, plan, fixed=RETRY_RESETS, explain=explain
    )
    return changed
