"""The store used inside a worker or beat process: one per process, made on first use.

Prefork children are forked from the parent; the store (and its engines) is created
lazily in the child, and ``reset`` drops anything inherited (see workers.signals).
It publishes with the worker's own Celery app.
"""

from __future__ import annotations

import socket
import threading

from assessment_store.config import get_settings
from assessment_store.publishing import CeleryDispatcher
from assessment_store.service import AssessmentStore
from workers.celery_app import app

_lock = threading.Lock()
_store: AssessmentStore | None = None
_hostname: str | None = None


def get_store() -> AssessmentStore:
    global _store
    if _store is None:
        with _lock:
            if _store is None:
                settings = get_settings()
                _store = AssessmentStore(
                    settings,
                    dispatcher=CeleryDispatcher(settings, app),
                    application_name="assessment-store-worker",
                )
    return _store


def reset(close: bool) -> None:
    """Forget this process's store; ``close`` also closes its connections (at shutdown,
    not after fork, where they belong to the parent)."""
    global _store
    with _lock:
        if _store is not None and close:
            _store.close()
        _store = None


def remember_hostname(hostname: str) -> None:
    """This worker's node name (``celery@host``), as tasks see it in ``request.hostname``."""
    global _hostname
    _hostname = hostname


def hostname() -> str:
    return _hostname or f"celery@{socket.gethostname()}"
