"""Beat jobs on the maintenance queue; each is safe to run twice at once."""

from __future__ import annotations

from typing import Any

from assessment_store import maintenance
from workers.celery_app import app
from workers.routing import MAINTENANCE_QUEUE
from workers.runtime import get_store

JOB_OPTIONS: dict[str, Any] = {"queue": MAINTENANCE_QUEUE, "ignore_result": True}


@app.task(name="assessment_store.maintenance.rescue", **JOB_OPTIONS)
def rescue() -> int:
    return maintenance.rescue_lost_attempts(get_store()).affected


@app.task(name="assessment_store.maintenance.redispatch", **JOB_OPTIONS)
def redispatch() -> int:
    return maintenance.redispatch_stale_pending(get_store()).affected


@app.task(name="assessment_store.maintenance.retry", **JOB_OPTIONS)
def retry() -> int:
    return maintenance.retry_due_failures(get_store()).affected


@app.task(name="assessment_store.maintenance.retention", **JOB_OPTIONS)
def retention() -> int:
    return maintenance.apply_retention(get_store()).affected
