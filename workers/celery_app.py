"""The Celery app and its configuration."""

from __future__ import annotations

from celery import Celery

from assessment_store.config import get_settings

_settings = get_settings()

app = Celery("assessment_store", broker=_settings.effective_broker_url)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    task_ignore_result=True,
    timezone="UTC",
    enable_utc=True,
)
