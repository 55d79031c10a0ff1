"""Creating assessments: validated requests become rows, committed, then published.

Idempotency on client ids: a repeat of the same request (same creator, same content
but for the timestamp) returns the existing id; anything else under that id is
AssessmentConflictError.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Connection

from assessment_store import at_rest, metrics, policy
from assessment_store.bootstrap import Runtime
from assessment_store.db import repository, transitions
from assessment_store.db.transitions import NewAssessment
from assessment_store.dispatch import dispatch_item
from assessment_store.encryption import KeyRing
from assessment_store.errors import (
    AssessmentConflictError,
    InvalidInputError,
    UnknownAssessmentTypeError,
)
from assessment_store.handlers.registry import HandlerRegistry
from assessment_store.handlers.targets import TYPES_NEEDING_A_TARGET, target_problem
from assessment_store.inputs import check_text
from assessment_store.models import AssessmentRequest


def create(runtime: Runtime, requests: Sequence[AssessmentRequest], created_by: str) -> list[str]:
    """Create all of ``requests`` in one transaction (or none); ids in input order.
    New rows are published after the commit."""
    check_text("createdBy", created_by, max_chars=255, required=True)
    for request in requests:
        check_timeout(request, runtime)
    rows = new_rows(requests, created_by, runtime.handlers)
    if not rows:
        return []
    requests_by_id = {row.assessment_id: req for row, req in zip(rows, requests, strict=True)}
    unique_rows = list({row.assessment_id: row for row in rows}.values())
    keys = runtime.keys
    stored = unique_rows if keys is None else at_rest.seal_new(keys, unique_rows)

    def insert(conn: Connection) -> set[str]:
        inserted = transitions.create(conn, stored)
        repeated = [row for row in unique_rows if row.assessment_id not in inserted]
        if repeated:
            check_idempotent_repeats(conn, repeated, keys)
        return inserted

    inserted = runtime.transact(insert)
    if runtime.cache is not None:
        runtime.cache.forget(sorted(inserted))  # an older incarnation of a reused id
    fresh = [row for row in unique_rows if row.assessment_id in inserted]
    for row in fresh:
        metrics.CREATED.labels(row.assessment_type).inc()
    runtime.publish(
        [
            dispatch_item(
                row.assessment_id, row.priority, requests_by_id[row.assessment_id], runtime.settings
            )
            for row in fresh
        ]
    )
    return [row.assessment_id for row in rows]


def check_timeout(request: AssessmentRequest, runtime: Runtime) -> None:
    """Refuse an attempt time limit that cannot work, naming the field that set it."""
    problem = policy.timeout_problem(request.requested_timeout_seconds, runtime.settings)
    if problem is None:
        return
    if request.timeout is not None:
        raise InvalidInputError("timeout", problem, request.timeout)
    if request.options.timeout is not None:
        raise InvalidInputError("options.timeout", problem, request.options.timeout)
    # The configured default itself is refused at settings load; defensive only.
    raise InvalidInputError("timeout", problem, runtime.settings.default_timeout_seconds)


def new_rows(
    requests: Sequence[AssessmentRequest], created_by: str, handlers: HandlerRegistry
) -> list[NewAssessment]:
    """One row per request, in order; ids assigned where the client gave none.

    Refuses unregistered types, and a client id repeated within the batch with a
    different request.
    """
    rows: list[NewAssessment] = []
    first_by_id: dict[str, AssessmentRequest] = {}
    for index, request in enumerate(requests):
        if request.assessment_type not in handlers:
            raise UnknownAssessmentTypeError(request.assessment_type, handlers.types())
        check_runnable(request, f"assessments.{index}." if len(requests) > 1 else "")
        assessment_id = request.id or str(uuid.uuid4())
        if request.id is not None:
            first = first_by_id.setdefault(request.id, request)
            if first is not request and first.identity() != request.identity():
                raise AssessmentConflictError(request.id)
        stored = request.to_wire()
        stored["id"] = assessment_id
        rows.append(
            NewAssessment(
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


def check_runnable(request: AssessmentRequest, where: str = "") -> None:
    """Refuse a request no worker could ever run (it would fail, be retried and fail
    again): a type that connects to its serverName without a usable one."""
    if request.assessment_type in TYPES_NEEDING_A_TARGET:
        problem = target_problem(request.server_name)
        if problem is not None:
            raise InvalidInputError(f"{where}serverName", problem, request.server_name)


def check_idempotent_repeats(
    conn: Connection, repeated: Sequence[NewAssessment], keys: KeyRing | None = None
) -> None:
    """Rows whose id already existed must repeat the stored request (same creator, same
    content but for the timestamp); anything else is AssessmentConflictError."""
    existing = repository.fetch_identities(conn, [row.assessment_id for row in repeated])
    for row in repeated:
        owner, stored = existing[row.assessment_id]
        if owner != row.created_by:
            raise AssessmentConflictError(row.assessment_id, taken=True)
        same_request = (
            AssessmentRequest.model_validate(
                at_rest.open_request(keys, row.assessment_id, stored)
            ).identity()
            == AssessmentRequest.model_validate(row.request_data).identity()
        )
        if not same_request:
            raise AssessmentConflictError(row.assessment_id)
