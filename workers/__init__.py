"""The Celery application, importable as ``workers`` (``celery -A workers worker``).

``workers.tasks`` runs assessments, ``workers.maintenance`` holds beat's jobs (on
the ``maintenance`` queue), ``workers.schedule`` their schedule, ``workers.signals``
the per-process set-up, ``workers.flower_guard`` keeps any Flower started with this
app behind credentials. Everything they do is in ``assessment_store``.
"""

from __future__ import annotations

from workers import flower_guard
from workers.celery_app import app

# Here, not in a Celery signal: Flower reads its options before it touches the app.
flower_guard.install()

__all__ = ["app"]
