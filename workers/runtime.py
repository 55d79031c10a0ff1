"""The store used inside a worker or beat process: one per process, made on first use.

Prefork children are forked from the parent; the store (and its engines) is created
lazily in the child, and ``reset`` drops anything inherited (see workers.signals).
"""

from __future__ import annotations

import threading

from assessment_store.service import AssessmentStore
from workers.celery_app import app
from workers.dispatcher import make_store

_lock = threading.Lock()
_store: AssessmentStore | None = None


def get_store() -> AssessmentStore:
    global _store
    if _store is None:
        with _lock:
            if _store is None:
                _store = make_store(app=app)
    return _store


def reset(close: bool) -> None:
    """Forget this process's store; ``close`` also closes its connections (at shutdown,
    not after fork, where they belong to the parent)."""
    global _store
    with _lock:
        if _store is not None and close:
            _store.close()
        _store = None
