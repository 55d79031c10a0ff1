"""Publishing assessments to Celery: the store's Dispatcher, backed by the broker."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from celery import Celery

from assessment_store.config import Settings, get_settings
from assessment_store.db.engine import Engines
from assessment_store.dispatch import DispatchItem
from assessment_store.service import AssessmentStore
from workers.routing import queue_for_priority

logger = logging.getLogger("workers.dispatcher")

RUN_ASSESSMENT_TASK = "assessment_store.run_assessment"
# The hard limit leaves the handler time to react to the soft one and record a clean
# "timed out" failure; past it the child is killed and the lease rescue takes over.
HARD_LIMIT_GRACE_SECONDS = 10.0


def time_limits(timeout_seconds: float) -> tuple[float, float]:
    """(soft, hard) Celery time limits for an attempt of ``timeout_seconds``."""
    return timeout_seconds, timeout_seconds + HARD_LIMIT_GRACE_SECONDS


class CeleryDispatcher:
    """Publishes ``run_assessment`` messages, one connection for a whole batch."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def dispatch(self, items: Sequence[DispatchItem]) -> None:
        if not items:
            return
        task = self.app.signature(RUN_ASSESSMENT_TASK)
        with self.app.producer_or_acquire() as producer:
            for item in items:
                soft, hard = time_limits(item.timeout_seconds)
                task.apply_async(
                    args=(item.assessment_id,),
                    queue=queue_for_priority(item.priority),
                    soft_time_limit=soft,
                    time_limit=hard,
                    producer=producer,
                )
        logger.debug("dispatched %d assessment(s)", len(items))


def make_store(
    settings: Settings | None = None,
    app: Celery | None = None,
    *,
    application_name: str = "assessment-store",
) -> AssessmentStore:
    """An AssessmentStore that publishes to the workers (producers, API, CLI);
    ``application_name`` labels its database connections (pg_stat_activity)."""
    if app is None:
        from workers.celery_app import app as default_app

        app = default_app
    settings = settings or get_settings()
    return AssessmentStore(
        settings,
        engines=Engines(settings, application_name=application_name),
        dispatcher=CeleryDispatcher(app),
    )
