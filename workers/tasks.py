"""The assessment task: thin, idempotent, and quiet about duplicates.

PostgreSQL holds each attempt's outcome; the task's own state is what Celery and
Flower show. A failed attempt is recorded first, then reported as the task's failure
(AttemptFailedError): Flower shows FAILURE with the recorded error, the message is
acked like any finished one (task_acks_on_failure), and the store's retry policy,
not Celery, decides whether it runs again.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from assessment_store.execution import (
    Ending,
    fail_overrun_attempt,
    record_timeout,
    run_attempt_ending,
)
from assessment_store.queues import RUN_ASSESSMENT_TASK
from workers import runtime
from workers.celery_app import app

logger = logging.getLogger("workers.tasks")


class AttemptFailedError(Exception):
    """An attempt failed and its failure is already recorded in PostgreSQL; the message
    is the error recorded there. Raised only so that Celery reports the task as failed.

    The task lists it in ``throws``: Celery logs it at INFO, without a traceback (the
    store logged the failure already, in one line), instead of an ERROR traceback per
    failed attempt. The task has no autoretry: Celery never retries it."""


class AssessmentTask(Task):  # type: ignore[misc]
    """Records a hard time limit: the child was killed, so it could not say so itself."""

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        # Called in the worker's main process when the pool killed the child.
        if not isinstance(exc, TimeLimitExceeded) or not args or not isinstance(args[0], str):
            return
        try:
            if fail_overrun_attempt(runtime.get_store().runtime, args[0], runtime.hostname()):
                logger.warning("attempt_killed_at_hard_limit: %s", args[0])
        except Exception:
            # The lease rescue still ends it; never break the worker's main process.
            logger.exception("hard_limit_record_failed: %s", args[0])


@app.task(name=RUN_ASSESSMENT_TASK, bind=True, base=AssessmentTask, throws=(AttemptFailedError,))
def run_assessment(self: Task, assessment_id: object) -> str:
    """Claim and run one attempt; the outcome is recorded in PostgreSQL, not here. A
    failed attempt raises AttemptFailedError once recorded; any other end returns its
    outcome (``completed``, ``duplicate``, ``cancelled``...)."""
    if not isinstance(assessment_id, str) or not assessment_id:
        logger.error("bad_message: run_assessment needs an assessment id, got %r", assessment_id)
        return "rejected"
    worker_id = f"{self.request.hostname or 'worker'}:{os.getpid()}"
    try:
        store = runtime.get_store()
    except SoftTimeLimitExceeded:
        # The limit struck before the attempt began: record it like any other moment.
        return reported(record_timeout(runtime.get_store().runtime, assessment_id, worker_id))
    ending = run_attempt_ending(
        store.runtime,
        assessment_id,
        worker_id,
        timeout_exceptions=(SoftTimeLimitExceeded,),
    )
    return reported(ending)


def reported(ending: Ending) -> str:
    """The task's result for ``ending``; raises AttemptFailedError for a failed attempt."""
    if ending.error is not None:
        raise AttemptFailedError(ending.error)
    return ending.outcome.value
