"""Turning validated requests into new rows, and judging repeats of client ids."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Connection

from assessment_store.db import repository
from assessment_store.errors import AssessmentConflictError, UnknownAssessmentTypeError
from assessment_store.handlers.registry import HandlerRegistry
from assessment_store.models import AssessmentRequest


def new_rows(
    requests: Sequence[AssessmentRequest], created_by: str, handlers: HandlerRegistry
) -> list[repository.NewAssessment]:
    """One row per request, in order; ids assigned where the client gave none.

    Refuses unregistered types, and a client id repeated within the batch with a
    different request.
    """
    rows: list[repository.NewAssessment] = []
    first_by_id: dict[str, AssessmentRequest] = {}
    for request in requests:
        if request.assessment_type not in handlers:
            raise UnknownAssessmentTypeError(request.assessment_type, handlers.types())
        assessment_id = request.id or str(uuid.uuid4())
        if request.id is not None:
            first = first_by_id.setdefault(request.id, request)
            if first is not request and first.identity() != request.identity():
                raise AssessmentConflictError(request.id)
        stored = request.to_wire()
        stored["id"] = assessment_id
        rows.append(
            repository.NewAssessment(
                assessment_id=assessment_id,
                request_data=stored,
                priority=request.priority,
                assessment_type=request.assessment_type,
                server_name=request.server_name,
                source=request.source,
                created_by=created_by,
            )
        )
    return rows


def check_idempotent_repeats(
    conn: Connection, repeated: Sequence[repository.NewAssessment]
) -> None:
    """Rows whose id already existed must repeat the stored request (same creator, same
    content but for the timestamp); anything else is AssessmentConflictError."""
    existing = repository.fetch_identities(conn, [row.assessment_id for row in repeated])
    for row in repeated:
        owner, stored = existing[row.assessment_id]
        same_request = (
            AssessmentRequest.model_validate(stored).identity()
            == AssessmentRequest.model_validate(row.request_data).identity()
        )
        if owner != row.created_by or not same_request:
            raise AssessmentConflictError(row.assessment_id)
