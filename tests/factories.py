"""Small builders for requests and for driving an assessment to a given state."""

from __future__ import annotations

import itertools
from typing import Any

from assessment_store.config import Settings
from assessment_store.dispatch import NullDispatcher
from assessment_store.models import Assessment, AssessmentRequest
from assessment_store.service import AssessmentStore

_counter = itertools.count()


def quiet_store(settings: Settings, **parts: Any) -> AssessmentStore:
    """A store that publishes nothing (asked for explicitly: the default publishes)."""
    return AssessmentStore(settings, dispatcher=NullDispatcher(), **parts)


def request(**fields: Any) -> AssessmentRequest:
    """A valid request; keyword fields (snake_case) override the defaults."""
    defaults: dict[str, Any] = {"assessment_type": "health", "server_name": "127.0.0.1:80"}
    return AssessmentRequest(**{**defaults, **fields})


def processing(store: AssessmentStore, **fields: Any) -> Assessment:
    """A new assessment already claimed by a worker."""
    assessment_id = store.create_assessment(request(**fields))
    return store.start_processing(assessment_id, f"worker-{next(_counter)}")


def failed(store: AssessmentStore, error: str = "boom", **fields: Any) -> Assessment:
    """A new assessment whose first attempt failed."""
    return store.fail_assessment(processing(store, **fields).assessment_id, error)
