"""The Celery application, importable as ``workers`` (``celery -A workers worker``).

The queues, tasks and beat schedule arrive with the worker issue; for now the app is
configured against the settings' broker so ``celery -A workers inspect`` already works.
"""

from __future__ import annotations

from workers.celery_app import app

__all__ = ["app"]
