"""The error tree of the store: one shallow hierarchy under AssessmentStoreError.

Each error carries the stable ``code`` and ``http_status`` that the HTTP API returns,
so the edge maps errors without a table of its own.
"""

from __future__ import annotations


class AssessmentStoreError(Exception):
    """Raised when the store refuses or cannot complete an operation."""

    code = "ASSESSMENT_STORE_ERROR"
    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(AssessmentStoreError):
    """Raised when settings are missing or invalid; the message names the variable."""

    code = "CONFIGURATION_ERROR"


class AssessmentNotFoundError(AssessmentStoreError):
    """Raised when no assessment has the given id (or the caller may not see it)."""

    code = "ASSESSMENT_NOT_FOUND"
    http_status = 404

    def __init__(self, assessment_id: str) -> None:
        super().__init__(f"assessment {assessment_id!r} not found")
        self.assessment_id = assessment_id


class AssessmentTimeoutError(AssessmentStoreError):
    """Raised when waiting for an assessment outlasts the timeout."""

    code = "ASSESSMENT_TIMEOUT"
    http_status = 408

    def __init__(self, assessment_id: str, timeout_seconds: float, state: str) -> None:
        super().__init__(
            f"assessment {assessment_id!r} not finished after {timeout_seconds:g}s (still {state})"
        )
        self.assessment_id = assessment_id
        self.timeout_seconds = timeout_seconds
        self.state = state


class InvalidStateTransitionError(AssessmentStoreError):
    """Raised when the transition table does not allow the requested change."""

    code = "INVALID_STATE_TRANSITION"
    http_status = 409

    def __init__(self, assessment_id: str, from_state: str, to_state: str) -> None:
        super().__init__(f"assessment {assessment_id!r} cannot go from {from_state} to {to_state}")
        self.assessment_id = assessment_id
        self.from_state = from_state
        self.to_state = to_state


class VersionConflictError(AssessmentStoreError):
    """Raised when the expected version is stale: someone else changed the row first."""

    code = "VERSION_CONFLICT"
    http_status = 409

    def __init__(
        self, assessment_id: str, expected_version: int, actual_version: int | None
    ) -> None:
        actual = "unknown" if actual_version is None else str(actual_version)
        super().__init__(
            f"assessment {assessment_id!r} is at version {actual}, "
            f"not the expected {expected_version}"
        )
        self.assessment_id = assessment_id
        self.expected_version = expected_version
        self.actual_version = actual_version


class AssessmentConflictError(AssessmentStoreError):
    """Raised when a client-supplied id is reused with a different request."""

    code = "ASSESSMENT_CONFLICT"
    http_status = 409

    def __init__(self, assessment_id: str) -> None:
        super().__init__(
            f"assessment {assessment_id!r} already exists with a different request; "
            "reuse an id only to retry the identical request"
        )
        self.assessment_id = assessment_id


class UnknownAssessmentTypeError(AssessmentStoreError):
    """Raised when a request names an assessment type no handler is registered for."""

    code = "VALIDATION_ERROR"
    http_status = 422

    def __init__(self, assessment_type: str, known: list[str]) -> None:
        super().__init__(
            f"assessmentType: unknown type {assessment_type!r}; registered types are "
            + ", ".join(sorted(known))
        )
        self.assessment_type = assessment_type


class StoreUnavailableError(AssessmentStoreError):
    """Raised when PostgreSQL cannot be reached or the schema is not migrated."""

    code = "STORE_UNAVAILABLE"
    http_status = 503


class AssessmentCancelledError(AssessmentStoreError):
    """Raised inside a running handler once its assessment has been cancelled."""

    code = "ASSESSMENT_CANCELLED"
    http_status = 409

    def __init__(self, assessment_id: str) -> None:
        super().__init__(f"assessment {assessment_id!r} was cancelled")
        self.assessment_id = assessment_id


class PermanentAssessmentError(AssessmentStoreError):
    """Raised by a handler for a failure that retrying cannot fix (no retry follows)."""

    code = "PERMANENT_FAILURE"
    http_status = 422
