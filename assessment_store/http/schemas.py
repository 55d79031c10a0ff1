"""Request and response bodies of the HTTP API that are not domain models."""

from __future__ import annotations

from pydantic import Field

from assessment_store.models import AssessmentRequest, AuditEntry, StrictInt, WireModel
from assessment_store.states import AssessmentState

MAX_BATCH = 1000


class CreatedResponse(WireModel):
    assessment_id: str
    state: AssessmentState


class BatchCreateRequest(WireModel):
    assessments: list[AssessmentRequest] = Field(min_length=1, max_length=MAX_BATCH)


class BatchCreatedResponse(WireModel):
    assessment_ids: list[str]


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
