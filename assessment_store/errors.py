"""Every error the store raises: one shallow tree under AssessmentStoreError.

Each error carries a stable ``code`` (what went wrong, for machines); how an edge
reports it (an HTTP status, a CLI exit code) is decided at that edge
(``http/errors.py``, ``cli/__init__.py``).
"""

from __future__ import annotations


class AssessmentStoreError(Exception):
    """Raised when the store refuses or cannot complete an operation."""

    code = "ASSESSMENT_STORE_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(AssessmentStoreError):
    """Raised when settings are missing or invalid; the message names the variable."""

    code = "CONFIGURATION_ERROR"


class StoreUnavailableError(AssessmentStoreError):
    """Raised when PostgreSQL cannot be reached or the schema is not migrated."""

    code = "STORE_UNAVAILABLE"


class DecryptionError(AssessmentStoreError):
    """Raised when a value stored encrypted cannot be read: its key is not in
    ENCRYPTION_KEYS (or encryption is off), the key under its id is a different one,
    or the value was altered or moved. Names the key id, never key material; the
    operation that met it writes nothing."""

    code = "DECRYPTION_FAILED"


# -- bad input ---------------------------------------------------------------------


class InvalidInputError(AssessmentStoreError, ValueError):
    """Raised when an argument is out of range or of the wrong kind; names the field."""

    code = "VALIDATION_ERROR"

    def __init__(self, field: str, problem: str, value: object) -> None:
        super().__init__(f"{field}: {problem} (got {value!r:.200})")
        self.field = field


class InvalidCursorError(InvalidInputError):
    """Raised when a pagination cursor was not produced by this service."""

    def __init__(self) -> None:
        AssessmentStoreError.__init__(
            self, "cursor: not a cursor returned by a previous page (nextCursor)"
        )
        self.field = "cursor"


class UnknownAssessmentTypeError(AssessmentStoreError):
    """Raised when a request names an assessment type no handler is registered for."""

    code = "VALIDATION_ERROR"

    def __init__(self, assessment_type: str, known: list[str]) -> None:
        super().__init__(
            f"assessmentType: unknown type {assessment_type!r}; registered types are "
            + ", ".join(sorted(known))
        )
        self.assessment_type = assessment_type


class DataRejectedError(AssessmentStoreError):
    """Raised when the database refuses a value its constraints do not allow."""

    code = "VALIDATION_ERROR"


class UnusableFileError(AssessmentStoreError):
    """Raised when a file named on the command line cannot be read or written."""

    code = "VALIDATION_ERROR"

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


class LinesRejectedError(AssessmentStoreError):
    """Raised when any line of a JSON lines file is bad: nothing of the file is used.
    ``problems`` lists them by line; the message shows the first SHOWN, one a line."""

    code = "VALIDATION_ERROR"
    SHOWN = 50
    OUTCOME = "nothing done"

    def __init__(self, problems: list[str]) -> None:
        shown = problems[: self.SHOWN]
        more = f"\n... and {len(problems) - self.SHOWN} more" if len(problems) > self.SHOWN else ""
        super().__init__(f"{self.OUTCOME}: {len(problems)} bad line(s)\n" + "\n".join(shown) + more)
        self.problems = problems


class ImportRejectedError(LinesRejectedError):
    """Raised when any line of an import is bad; ``problems`` lists them by line."""

    OUTCOME = "nothing imported"


class BatchRejectedError(LinesRejectedError):
    """Raised when any line of a batch file (``submit --file``) is bad."""

    OUTCOME = "nothing submitted"


# -- assessments -------------------------------------------------------------------


class AssessmentNotFoundError(AssessmentStoreError):
    """Raised when no assessment has the given id (or the caller may not see it)."""

    code = "ASSESSMENT_NOT_FOUND"

    def __init__(self, assessment_id: str) -> None:
        super().__init__(f"assessment {assessment_id!r} not found")
        self.assessment_id = assessment_id


class AssessmentTimeoutError(AssessmentStoreError):
    """Raised when waiting for an assessment outlasts the timeout."""

    code = "ASSESSMENT_TIMEOUT"

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

    def __init__(self, assessment_id: str, from_state: str, to_state: str) -> None:
        super().__init__(f"assessment {assessment_id!r} cannot go from {from_state} to {to_state}")
        self.assessment_id = assessment_id
        self.from_state = from_state
        self.to_state = to_state


class VersionConflictError(AssessmentStoreError):
    """Raised when the expected version is stale: someone else changed the row first."""

    code = "VERSION_CONFLICT"

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
    """Raised when a client-supplied id is reused with a different request, or is
    already taken by another creator (``taken``)."""

    code = "ASSESSMENT_CONFLICT"

    def __init__(self, assessment_id: str, *, taken: bool = False) -> None:
        if taken:
            # Ids are global, so that the id is in use cannot be hidden; nothing else
            # is told: not whose it is, nor whether its request matches this one.
            message = f"assessment id {assessment_id!r} is already in use; choose another id"
        else:
            message = (
                f"assessment {assessment_id!r} already exists with a different request; "
                "reuse an id only to retry the identical request"
            )
        super().__init__(message)
        self.assessment_id = assessment_id


# -- running attempts --------------------------------------------------------------


class AssessmentCancelledError(AssessmentStoreError):
    """Raised inside a running handler once its assessment has been cancelled."""

    code = "ASSESSMENT_CANCELLED"

    def __init__(self, assessment_id: str) -> None:
        super().__init__(f"assessment {assessment_id!r} was cancelled")
        self.assessment_id = assessment_id


class AttemptSupersededError(AssessmentStoreError):
    """Raised inside a handler when its attempt no longer owns the assessment (it was
    rescued, or a later attempt holds it)."""

    code = "ATTEMPT_SUPERSEDED"


class PermanentAssessmentError(AssessmentStoreError):
    """Raised by a handler for a failure that retrying cannot fix (no retry follows)."""

    code = "PERMANENT_FAILURE"


# -- callers -----------------------------------------------------------------------


class UnauthorizedError(AssessmentStoreError):
    """Raised when a request carries no valid bearer token."""

    code = "UNAUTHORIZED"


class ForbiddenError(AssessmentStoreError):
    """Raised when the caller's role may not do this."""

    code = "FORBIDDEN"
