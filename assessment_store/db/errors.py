"""Translate database and driver exceptions into the store's domain errors.

No SQLAlchemy or psycopg2 exception leaks past the service: a caller sees an
AssessmentStoreError subclass with a message that says what to do.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    ProgrammingError,
)

from assessment_store.errors import DataRejectedError, StoreUnavailableError

# Constraint name -> the field it guards, for messages that name the field.
CONSTRAINT_FIELDS = {
    "ck_assessment_states_progress_range": "progress",
    "ck_assessment_states_priority_range": "priority",
    "ck_assessment_states_version_positive": "version",
    "ck_assessment_states_retry_count_non_negative": "retryCount",
    "ck_assessment_states_assessment_id_length": "id",
    "ck_assessment_states_request_data_object": "requestData",
}
UNDEFINED_TABLE = "42P01"
UNDEFINED_OBJECT = "42704"


def _constraint_name(exc: DBAPIError) -> str | None:
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


def _sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "pgcode", None)


@contextmanager
def translated_db_errors() -> Iterator[None]:
    """Re-raise database errors as domain errors (see module docstring)."""
    try:
        yield
    except IntegrityError as exc:
        name = _constraint_name(exc)
        field = CONSTRAINT_FIELDS.get(name or "", name or "unknown")
        raise DataRejectedError(f"{field}: rejected by the database ({name})") from exc
    except DataError as exc:
        raise DataRejectedError(
            f"value rejected by the database: {str(exc.orig).strip().splitlines()[0]}"
        ) from exc
    except ProgrammingError as exc:
        if _sqlstate(exc) in (UNDEFINED_TABLE, UNDEFINED_OBJECT):
            raise StoreUnavailableError(
                "the database is not migrated: run `assessment-store migrate` "
                "(alembic upgrade head)"
            ) from exc
        raise
    except UnicodeEncodeError as exc:
        raise DataRejectedError(f"value rejected: not valid Unicode ({exc.reason})") from exc
    except ValueError as exc:
        # psycopg2 refuses some values before they reach the server (NUL in a string).
        if "NUL" not in str(exc):
            raise
        raise DataRejectedError(f"value rejected: {exc}") from exc
    except OperationalError as exc:
        raise StoreUnavailableError(
            f"PostgreSQL is unreachable or refused the request: {str(exc.orig).strip()}"
        ) from exc
