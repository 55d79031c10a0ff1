"""What the worker reports to Celery: a failed attempt carries the error PostgreSQL
recorded (the task raises it, so Flower shows FAILURE), any other end carries none."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from assessment_store import AssessmentStore
from assessment_store.execution import Ending, Outcome, run_attempt_ending
from assessment_store.handlers.context import HandlerContext
from tests.factories import request
from workers.tasks import AttemptFailedError, reported


class FakeTimeoutError(Exception):
    """Stands in for Celery's SoftTimeLimitExceeded."""


def attempt(store: AssessmentStore, handler: Any, **fields: Any) -> tuple[str, Ending]:
    store.handlers.register("probe", handler)
    assessment_id = store.create_assessment(request(assessment_type="probe", **fields))
    ending = run_attempt_ending(
        store.runtime, assessment_id, "w", timeout_exceptions=(FakeTimeoutError,)
    )
    return assessment_id, ending


def fails(exc: BaseException) -> Any:
    def handler(ctx: HandlerContext) -> dict[str, Any]:
        raise exc

    return handler


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (ConnectionRefusedError("port 5432 closed"), Outcome.FAILED),
        (FakeTimeoutError(), Outcome.TIMED_OUT),
    ],
)
def test_a_failed_attempt_reports_the_recorded_error_and_the_task_raises_it(
    store: AssessmentStore, exc: BaseException, outcome: Outcome
) -> None:
    assessment_id, ending = attempt(store, fails(exc), timeout=2.5)
    recorded = store.get_state(assessment_id).error_message
    assert ending == Ending(outcome, recorded) and recorded
    with pytest.raises(AttemptFailedError) as raised:
        reported(ending)
    assert str(raised.value) == recorded


def test_any_other_end_reports_no_error_and_the_task_returns_its_outcome(
    store: AssessmentStore,
) -> None:
    _, ending = attempt(store, lambda ctx: {"done": True})
    assert ending == Ending(Outcome.COMPLETED)
    assert reported(ending) == "completed"
    assert reported(Ending(Outcome.DUPLICATE)) == "duplicate"


def test_a_failed_attempt_is_logged_in_one_line_with_the_traceback_only_at_debug(
    store: AssessmentStore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="assessment_store.execution"):
        assessment_id, _ = attempt(store, fails(RuntimeError("boom")))
    [line] = [r for r in caplog.records if r.getMessage().startswith("attempt_failed")]
    assert line.getMessage() == f"attempt_failed: {assessment_id}: RuntimeError: boom"
    assert not line.exc_info
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="assessment_store.execution"):
        attempt(store, fails(RuntimeError("boom")))
    [line] = [r for r in caplog.records if r.getMessage().startswith("attempt_failed")]
    assert line.exc_info and line.exc_info[0] is RuntimeError
