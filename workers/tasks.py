"""The assessment task: thin, idempotent, and quiet about duplicates."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

from assessment_store.execution import fail_overrun_attempt, record_timeout, run_attempt
from assessment_store.queues import RUN_ASSESSMENT_TASK
from workers import runtime
from workers.celery_app import app

logger = logging.getLogger("workers.tasks")


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


@app.task(name=RUN_ASSESSMENT_TASK, bind=True, base=AssessmentTask)
def run_assessment(self: Task, assessment_id: object) -> str:
    """Claim and run one attempt; the outcome is recorded in PostgreSQL, not here."""
    if not isinstance(assessment_id, str) or not assessment_id:
        logger.error("bad_message: run_assessment needs an assessment id, got %r", assessment_id)
        return "rejected"
    worker_id = f"{self.request.hostname or 'worker'}:{os.getpid()}"
    try:
        store = runtime.get_store()
    except SoftTimeLimitExceeded:
        # The limit struck before the attempt began: record it like any other moment.
        return record_timeout(runtime.get_store().runtime, assessment_id, worker_id).value
    outcome = run_attempt(
        store.runtime,
        assessment_id,
        worker_id,
        timeout_exceptions=(SoftTimeLimitExceeded,),
    )
    return outcome.value
