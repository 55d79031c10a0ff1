"""Many progress reports at once (``POST /v1/assessments/progress``,
``batch_update_progress``): each one a compare-and-set of its own, with its audit row.

Each update is checked as ``update_progress`` checks its arguments and becomes one
step of the transition engine, the one ``update_progress`` runs through
(``changes.transition``: guarded by state, by ``expectedVersion`` when given,
audited, cached); all the steps go as one statement. One update's refusal (not
found, not processing, a stale version, a progress out of range) is its outcome
alone: the others are applied as if it were not there, and it writes nothing.
Outcomes come back in input order.

An id given more than once is updated in input order: its first update goes in the
first statement, its second in the next, and so on (one statement cannot change a
row twice), each statement committed before the next runs. A database failure
raises; statements already run stay applied.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

from assessment_store import changes
from assessment_store.bootstrap import Runtime
from assessment_store.db import repository
from assessment_store.db.transitions import Step
from assessment_store.errors import AssessmentStoreError, InvalidInputError
from assessment_store.inputs import check_expected_version, check_lookup_id
from assessment_store.models import OutcomeError, ProgressOutcome, ProgressUpdate
from assessment_store.states import AssessmentEvent, AssessmentState

MAX_PROGRESS_BATCH: Final = 1000
EVENT: Final = AssessmentEvent.PROGRESS


def apply_batch(
    runtime: Runtime,
    updates: Sequence[ProgressUpdate | Mapping[str, Any]],
    *,
    changed_by: str,
) -> list[ProgressOutcome]:
    """Apply each update whose checks and guard pass; one outcome per update, in order.

    More than MAX_PROGRESS_BATCH updates is InvalidInputError (nothing applied); an
    update that is not a ProgressUpdate or its mapping is pydantic's ValidationError."""
    if len(updates) > MAX_PROGRESS_BATCH:
        raise InvalidInputError(
            "updates", f"at most {MAX_PROGRESS_BATCH} updates per batch", len(updates)
        )
    parsed = [
        u if isinstance(u, ProgressUpdate) else ProgressUpdate.model_validate(u) for u in updates
    ]
    outcomes: dict[int, ProgressOutcome] = {}
    rounds: list[list[tuple[int, Step]]] = []
    occurrences: Counter[str] = Counter()
    for index, update in enumerate(parsed):
        try:
            step = _step(update, changed_by)
        except InvalidInputError as exc:
            outcomes[index] = _refused(update.assessment_id, exc)
            continue
        nth = occurrences[step.assessment_id]
        occurrences[step.assessment_id] += 1
        if nth == len(rounds):
            rounds.append([])
        rounds[nth].append((index, step))
    for planned in rounds:
        outcomes.update(_apply(runtime, planned))
    return [outcomes[index] for index in range(len(parsed))]


def _step(update: ProgressUpdate, changed_by: str) -> Step:
    """The update as an engine step, checked as update_progress checks it."""
    assessment_id = check_lookup_id(update.assessment_id)
    reason, values = changes.progress_change(update.progress, update.message)
    expected = check_expected_version(update.expected_version)
    return Step(
        assessment_id, AssessmentState.PROCESSING, changed_by, reason, expected, values=values
    )


def _apply(runtime: Runtime, planned: list[tuple[int, Step]]) -> dict[int, ProgressOutcome]:
    """One statement for steps of distinct ids; each one's outcome by input index.
    A step the engine did not apply is explained from the row as it is right after."""
    changed = changes.transition(runtime, EVENT, [step for _, step in planned])
    versions = {assessment.assessment_id: assessment.version for assessment in changed}
    refused = [step.assessment_id for _, step in planned if step.assessment_id not in versions]
    fresh = (
        runtime.read(lambda conn: repository.fetch_assessments(conn, refused)) if refused else {}
    )
    outcomes = {}
    for index, step in planned:
        assessment_id = step.assessment_id
        if assessment_id in versions:
            outcomes[index] = ProgressOutcome(
                assessment_id=assessment_id, ok=True, version=versions[assessment_id]
            )
        else:
            why = changes.refusal(
                fresh.get(assessment_id), assessment_id, EVENT, step.expected_version, None
            )
            outcomes[index] = _refused(assessment_id, why)
    return outcomes


def _refused(assessment_id: str, error: Exception) -> ProgressOutcome:
    code = error.code if isinstance(error, AssessmentStoreError) else "ASSESSMENT_STORE_ERROR"
    message = error.message if isinstance(error, AssessmentStoreError) else str(error)
    return ProgressOutcome(
        assessment_id=assessment_id, ok=False, error=OutcomeError(code=code, message=message)
    )
