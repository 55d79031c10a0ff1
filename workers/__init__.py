"""The Celery application, importable as ``workers`` (``celery -A workers worker``).

``workers.tasks`` runs assessments, ``workers.maintenance`` holds beat's jobs (on
the ``maintenance`` queue), ``workers.schedule`` their schedule, ``workers.signals``
the per-process set-up. Everything they do is in ``assessment_store``.
"""

from __future__ import annotations

from workers.celery_app import app

__all__ = ["app"]
