"""The /v1 assessment endpoints: thin (parse, call one service function, shape)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response, status
from starlette.concurrency import run_in_threadpool

from assessment_store.http import waiting
from assessment_store.http.dependencies import Admin, Caller, Store, Writer
from assessment_store.http.list_filters import filters_from_query
from assessment_store.http.schemas import (
    AuditTrailResponse,
    BatchCreatedResponse,
    BatchCreateRequest,
    CancelRequest,
    CreatedResponse,
    ErrorResponse,
    ProgressBatchRequest,
    ProgressBatchResponse,
    RetryRequest,
    WaitResponse,
)
from assessment_store.inputs import MAX_STATS_WINDOW_SECONDS
from assessment_store.models import (
    Assessment,
    AssessmentPage,
    AssessmentRequest,
    AssessmentStats,
)
from assessment_store.policy import attempt_timeout_seconds
from assessment_store.states import AssessmentState
from assessment_store.waiting import check_wait_timeout

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 403, 404, 409, 422)
}
router = APIRouter(prefix="/v1", responses=ERRORS)


@router.post(
    "/assessments",
    status_code=status.HTTP_201_CREATED,
    response_model=CreatedResponse,
    response_model_by_alias=True,
)
def create_assessment(request: AssessmentRequest, store: Store, caller: Writer) -> CreatedResponse:
    """Create an assessment (idempotent on a client-supplied ``id``)."""
    assessment_id = store.create_assessment(request, created_by=caller.subject)
    current = store.get_state(assessment_id)
    limit = attempt_timeout_seconds(current.request_data.requested_timeout_seconds, store.settings)
    return CreatedResponse(
        assessment_id=assessment_id, state=current.state, estimated_time=round(limit * 1000)
    )


@router.post(
    "/assessments/batch",
    status_code=status.HTTP_201_CREATED,
    response_model=BatchCreatedResponse,
    response_model_by_alias=True,
)
def create_batch(body: BatchCreateRequest, store: Store, caller: Writer) -> BatchCreatedResponse:
    """Create many assessments in one transaction: all or none."""
    ids = store.batch_create_assessments(body.assessments, created_by=caller.subject)
    return BatchCreatedResponse(assessment_ids=ids)


@router.post(
    "/assessments/progress",
    response_model=ProgressBatchResponse,
    response_model_by_alias=True,
    response_model_exclude_none=True,
)
def batch_progress(
    body: ProgressBatchRequest, store: Store, caller: Admin
) -> ProgressBatchResponse:
    """Apply many progress updates, each a compare-and-set of its own (admin only):
    200 with one result per update, in order, ``ok`` or its ``error``."""
    results = store.batch_update_progress(body.updates, changed_by=caller.subject)
    return ProgressBatchResponse(results=results)


@router.get("/assessments", response_model=AssessmentPage, response_model_by_alias=True)
def list_assessments(
    store: Store,
    caller: Caller,
    state: Annotated[list[AssessmentState] | None, Query()] = None,
    assessment_type: Annotated[str | None, Query(alias="type")] = None,
    server: Annotated[str | None, Query()] = None,
    source: Annotated[str | None, Query()] = None,
    created_by: Annotated[str | None, Query(alias="createdBy")] = None,
    created_after: Annotated[datetime | None, Query(alias="createdAfter")] = None,
    created_before: Annotated[datetime | None, Query(alias="createdBefore")] = None,
    limit: Annotated[int, Query()] = 50,
    cursor: Annotated[str | None, Query()] = None,
    q: Annotated[str | None, Query(description="a substring of id, server or error")] = None,
) -> AssessmentPage:
    """Assessments newest first; ``nextCursor`` fetches the next page."""
    filters = filters_from_query(
        {
            "states": state,
            "assessmentType": assessment_type,
            "serverName": server,
            "source": source,
            "createdBy": created_by,
            "createdAfter": created_after,
            "createdBefore": created_before,
            "limit": limit,
            "cursor": cursor,
            "q": q,
        }
    )
    return store.list_assessments(filters, owner=caller.owner)


@router.get("/assessments/{assessment_id}", response_model=Assessment, response_model_by_alias=True)
async def get_assessment(assessment_id: str, store: Store, caller: Caller) -> Response:
    """The assessment's current state."""
    # The read blocks, so it runs in the thread pool (one hand-off, not three: the
    # dependencies are async); the model is already valid, so it is serialised as is
    # rather than validated again against the response model.
    found = await run_in_threadpool(store.get_state, assessment_id, owner=caller.owner)
    return Response(found.model_dump_json(by_alias=True), media_type="application/json")


@router.get(
    "/assessments/{assessment_id}/wait",
    response_model=WaitResponse,
    response_model_by_alias=True,
    responses={408: {"model": ErrorResponse}},
)
async def wait_for_assessment(
    assessment_id: str,
    store: Store,
    caller: Caller,
    timeout: Annotated[float, Query(gt=0, allow_inf_nan=False)] = 30.0,
) -> WaitResponse:
    """Long-poll until the assessment is finished; 408 ASSESSMENT_TIMEOUT after ``timeout``
    seconds (at most MAX_WAIT_SECONDS)."""
    seconds = check_wait_timeout("timeout", timeout)  # the rule `assessment-store wait` follows
    found = await waiting.wait_for_completion(store, assessment_id, seconds, caller.owner)
    return WaitResponse.of(found)


@router.post(
    "/assessments/{assessment_id}/cancel", response_model=Assessment, response_model_by_alias=True
)
def cancel_assessment(
    assessment_id: str,
    store: Store,
    caller: Writer,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> Assessment:
    """Cancel a pending or running assessment, with an optional ``reason``; with
    ``expectedVersion``, only if nobody changed it since that version."""
    return store.cancel_assessment(
        assessment_id,
        body.reason if body else None,
        owner=caller.owner,
        changed_by=caller.subject,
        expected_version=body.expected_version if body else None,
    )


@router.post(
    "/assessments/{assessment_id}/retry", response_model=Assessment, response_model_by_alias=True
)
def retry_assessment(
    assessment_id: str,
    store: Store,
    caller: Writer,
    body: Annotated[RetryRequest | None, Body()] = None,
) -> Assessment:
    """Put a failed assessment back to pending now (also when its automatic retries are
    used up); with ``expectedVersion``, only if nobody changed it since that version."""
    return store.retry_assessment(
        assessment_id,
        owner=caller.owner,
        changed_by=caller.subject,
        expected_version=body.expected_version if body else None,
    )


@router.get(
    "/assessments/{assessment_id}/audit",
    response_model=AuditTrailResponse,
    response_model_by_alias=True,
)
def audit_trail(assessment_id: str, store: Store, caller: Caller) -> AuditTrailResponse:
    """Every version of the assessment, oldest first."""
    entries = store.get_audit_trail(assessment_id, owner=caller.owner)
    return AuditTrailResponse(assessment_id=assessment_id, entries=entries)


@router.get("/stats", response_model=AssessmentStats, response_model_by_alias=True)
def stats(
    store: Store,
    caller: Caller,
    window: Annotated[
        int, Query(ge=1, le=MAX_STATS_WINDOW_SECONDS, description="seconds for rates")
    ] = 300,
) -> AssessmentStats:
    """Counts by state, throughput per minute, average processing time, error rate."""
    return store.get_assessment_stats(owner=caller.owner, window_seconds=window)
