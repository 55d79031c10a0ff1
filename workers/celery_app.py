"""The worker's Celery app: the store's shared configuration plus the beat schedule."""

from __future__ import annotations

from celery import Celery

from assessment_store.celery_config import celery_settings
from assessment_store.config import Settings, get_settings
from workers.schedule import beat_schedule


def configure(app: Celery, settings: Settings) -> None:
    """Apply the store's settings to a Celery app."""
    app.conf.update(celery_settings(settings), beat_schedule=beat_schedule(settings))


app = Celery(
    "assessment_store", include=["workers.tasks", "workers.maintenance", "workers.signals"]
)
configure(app, get_settings())
