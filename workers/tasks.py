"""The assessment task: thin, idempotent, and quiet about duplicates."""

from __future__ import annotations

import logging
import os

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from assessment_store.execution import run_attempt
from workers.celery_app import app
from workers.dispatcher import RUN_ASSESSMENT_TASK
from workers.runtime import get_store

logger = logging.getLogger("workers.tasks")


@app.task(name=RUN_ASSESSMENT_TASK, bind=True)
def run_assessment(self: Task, assessment_id: object) -> str:
    """Claim and run one attempt; the outcome is recorded in PostgreSQL, not here."""
    if not isinstance(assessment_id, str) or not assessment_id:
        logger.error("bad_message: run_assessment needs an assessment id, got %r", assessment_id)
        return "rejected"
    worker_id = f"{self.request.hostname or 'worker'}:{os.getpid()}"
    outcome = run_attempt(
        get_store(), assessment_id, worker_id, timeout_exceptions=(SoftTimeLimitExceeded,)
    )
    return outcome.value
