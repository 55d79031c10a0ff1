"""Request models: camelCase on the wire, and bad input refused naming the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from assessment_store.models import AssessmentFilters, AssessmentRequest


def field_names(error: ValidationError) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in error.errors()}


def test_a_camel_case_request_parses_and_serialises_back_to_camel_case() -> None:
    request = AssessmentRequest.model_validate(
        {
            "id": "a-1",
            "serverName": "db1:5432",
            "assessmentType": "health",
            "options": {"includeDetails": True, "serverFilter": ["db1"]},
            "source": "compliance",
            "priority": 9,
            "timeout": 12.5,
        }
    )
    assert request.server_name == "db1:5432"
    assert request.options.include_details is True
    wire = request.to_wire()
    assert wire["serverName"] == "db1:5432"
    assert wire["options"]["serverFilter"] == ["db1"]
    assert wire["assessmentType"] == "health"
    assert AssessmentRequest.model_validate(wire) == request


def test_defaults_fill_in_an_aware_timestamp_and_priority_five() -> None:
    request = AssessmentRequest(assessment_type="health")
    assert request.priority == 5
    assert isinstance(request.timestamp, datetime) and request.timestamp.tzinfo is not None


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"assessmentType": "health", "priority": 0}, "priority"),
        ({"assessmentType": "health", "priority": 11}, "priority"),
        ({"assessmentType": "health", "timeout": -1}, "timeout"),
        ({"assessmentType": "health", "source": "elsewhere"}, "source"),
        ({"assessmentType": "Health!"}, "assessmentType"),
        ({"assessmentType": "health", "id": "has space"}, "id"),
        ({"assessmentType": "health", "id": "x" * 256}, "id"),
        ({"assessmentType": "health", "options": {"deepScan": "very"}}, "options.deepScan"),
        ({"assessmentType": "health", "surprise": 1}, "surprise"),
        ({"assessmentType": "health", "timestamp": "2026-01-01T00:00:00"}, "timestamp"),
        ({}, "assessmentType"),
    ],
)
def test_bad_input_is_refused_naming_the_field(payload: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        AssessmentRequest.model_validate(payload)
    assert field in field_names(caught.value)


def test_identity_ignores_the_timestamp_and_id_but_not_the_content() -> None:
    first = AssessmentRequest(assessment_type="health", id="a", server_name="s")
    retried = first.model_copy(update={"timestamp": datetime(2020, 1, 1, tzinfo=UTC)})
    changed = AssessmentRequest(assessment_type="health", id="a", server_name="t")
    assert first.timestamp != retried.timestamp
    assert first.identity() == retried.identity()
    assert first.identity() != changed.identity()


def test_filters_bound_the_page_size() -> None:
    with pytest.raises(ValidationError) as caught:
        AssessmentFilters(limit=5000)
    assert "limit" in field_names(caught.value)
