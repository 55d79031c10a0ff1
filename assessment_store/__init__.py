"""AssessmentStore: durable assessments in PostgreSQL, run by Celery workers.

The public Python API (SPEC section 5)::

    from assessment_store import AssessmentStore, AssessmentRequest
"""

from __future__ import annotations

from assessment_store.config import Settings, get_settings, load_settings
from assessment_store.errors import (
    AssessmentCancelledError,
    AssessmentConflictError,
    AssessmentNotFoundError,
    AssessmentStoreError,
    AssessmentTimeoutError,
    ConfigurationError,
    InvalidInputError,
    InvalidStateTransitionError,
    PermanentAssessmentError,
    StoreUnavailableError,
    UnknownAssessmentTypeError,
    VersionConflictError,
)
from assessment_store.events import AssessmentEventMessage, Subscription
from assessment_store.migration import (
    AssessmentStoreMigration,
    EventEmitterBackend,
    LegacyBackend,
    MigrationStatus,
)
from assessment_store.models import (
    Assessment,
    AssessmentFilters,
    AssessmentOptions,
    AssessmentPage,
    AssessmentRequest,
    AssessmentStats,
    AuditEntry,
    ComponentHealth,
    HealthStatus,
    ProgressOutcome,
    ProgressUpdate,
)
from assessment_store.service import AssessmentStore
from assessment_store.states import AssessmentState

__all__ = [
    "Assessment",
    "AssessmentCancelledError",
    "AssessmentConflictError",
    "AssessmentEventMessage",
    "AssessmentFilters",
    "AssessmentNotFoundError",
    "AssessmentOptions",
    "AssessmentPage",
    "AssessmentRequest",
    "AssessmentState",
    "AssessmentStats",
    "AssessmentStore",
    "AssessmentStoreError",
    "AssessmentStoreMigration",
    "AssessmentTimeoutError",
    "AuditEntry",
    "ComponentHealth",
    "ConfigurationError",
    "EventEmitterBackend",
    "HealthStatus",
    "InvalidInputError",
    "InvalidStateTransitionError",
    "LegacyBackend",
    "MigrationStatus",
    "PermanentAssessmentError",
    "ProgressOutcome",
    "ProgressUpdate",
    "Settings",
    "StoreUnavailableError",
    "Subscription",
    "UnknownAssessmentTypeError",
    "VersionConflictError",
    "get_settings",
    "load_settings",
]
__version__ = "0.1.0"
