"""Beat jobs on the maintenance queue; each is safe to run twice at once."""

from __future__ import annotations

from typing import Any

from assessment_store.queues import MAINTENANCE_TASK_PREFIX
from workers.celery_app import app
from workers.runtime import get_store

# Routed to the maintenance queue by name (celery_config.TASK_ROUTES).
JOB_OPTIONS: dict[str, Any] = {"ignore_result": True}


@app.task(name=f"{MAINTENANCE_TASK_PREFIX}rescue", **JOB_OPTIONS)
def rescue() -> int:
    return get_store().run_maintenance_job("rescue").affected


@app.task(name=f"{MAINTENANCE_TASK_PREFIX}redispatch", **JOB_OPTIONS)
def redispatch() -> int:
    return get_store().run_maintenance_job("redispatch").affected


@app.task(name=f"{MAINTENANCE_TASK_PREFIX}retry", **JOB_OPTIONS)
def retry() -> int:
    return get_store().run_maintenance_job("retry").affected


@app.task(name=f"{MAINTENANCE_TASK_PREFIX}retention", **JOB_OPTIONS)
def retention() -> int:
    return get_store().run_maintenance_job("retention").affected
