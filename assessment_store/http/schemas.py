"""Request and response bodies of the HTTP API that are not domain models."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from assessment_store.models import (
    Assessment,
    AssessmentRequest,
    AuditEntry,
    ProgressOutcome,
    ProgressUpdate,
    StrictInt,
    WireModel,
)
from assessment_store.progress_batch import MAX_PROGRESS_BATCH
from assessment_store.states import AssessmentState

MAX_BATCH = 1000


class CreatedResponse(WireModel):
    assessment_id: str
    state: AssessmentState
    # The seed's REST answer, beside ours: clients written against it read these.
    status: Literal["created"] = "created"
    message: str = "Assessment created successfully"
    estimated_time: int  # milliseconds: the attempt's time limit


class WaitResponse(Assessment):
    """The finished assessment, plus the seed's wait answer: ``status`` (the state),
    ``result``, ``error`` and ``duration`` (milliseconds from the start of its last
    attempt, or from creation if it never ran, to its end)."""

    status: AssessmentState
    result: dict[str, Any] | None
    error: str | None
    duration: int | None

    @classmethod
    def of(cls, assessment: Assessment) -> WaitResponse:
        ended, began = assessment.completed_at, assessment.started_at or assessment.created_at
        duration = round((ended - began).total_seconds() * 1000) if ended else None
        return cls.model_construct(
            **dict(assessment),
            status=assessment.state,
            result=assessment.result_data,
            error=assessment.error_message,
            duration=duration,
        )


class BatchCreateRequest(WireModel):
    assessments: list[AssessmentRequest] = Field(min_length=1, max_length=MAX_BATCH)


class BatchCreatedResponse(WireModel):
    assessment_ids: list[str]


class ProgressBatchRequest(WireModel):
    updates: list[ProgressUpdate] = Field(min_length=1, max_length=MAX_PROGRESS_BATCH)


class ProgressBatchResponse(WireModel):
    results: list[ProgressOutcome]


class CancelRequest(WireModel):
    reason: str | None = Field(default=None, max_length=4000)
    # Cancel only if the assessment is still at this version (else 409 VERSION_CONFLICT).
    expected_version: StrictInt | None = Field(default=None, ge=1)


class RetryRequest(WireModel):
    # Retry only if the assessment is still at this version (else 409 VERSION_CONFLICT).
    expected_version: StrictInt | None = Field(default=None, ge=1)


class AuditTrailResponse(WireModel):
    assessment_id: str
    entries: list[AuditEntry]


class HealthResponse(WireModel):
    status: str


class ErrorDetail(WireModel):
    code: str
    message: str


class ErrorResponse(WireModel):
    error: ErrorDetail
