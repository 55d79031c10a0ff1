"""The seeds' response fields beside the API's own, and timeouts refused in the unit
they were sent in."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from assessment_store.http.auth import Role
from assessment_store.service import AssessmentStore
from tests.http.conftest import bearer

ADMIN = bearer("root", Role.ADMIN)


def test_create_answers_with_the_seeds_fields_too(client: TestClient) -> None:
    body = {"assessmentType": "compliance", "timeout": 45}
    created = client.post("/v1/assessments", headers=ADMIN, json=body).json()
    assert created["state"] == "pending" and created["assessmentId"]  # ours, unchanged
    assert created["status"] == "created" and created["message"]
    assert created["estimatedTime"] == 45_000  # milliseconds, as the seed's REST layer


def test_wait_answers_with_the_seeds_fields_too(client: TestClient, store: AssessmentStore) -> None:
    assessment_id = client.post(
        "/v1/assessments", headers=ADMIN, json={"assessmentType": "compliance"}
    ).json()["assessmentId"]
    store.start_processing(assessment_id, "w1")
    done = store.complete_assessment(assessment_id, {"score": 7})
    waited = client.get(f"/v1/assessments/{assessment_id}/wait", headers=ADMIN).json()
    assert waited["state"] == waited["status"] == "completed"
    assert waited["result"] == waited["resultData"] == {"score": 7}
    assert waited["error"] is None
    assert done.started_at and done.completed_at
    expected = round((done.completed_at - done.started_at).total_seconds() * 1000)
    assert waited["duration"] == expected


def test_stats_carry_the_seeds_metrics_names(client: TestClient, store: AssessmentStore) -> None:
    for _ in range(2):
        assessment_id = store.create_assessment({"assessmentType": "compliance"})
        store.start_processing(assessment_id, "w1")
        store.fail_assessment(assessment_id, "boom", permanent=True)
    store.create_assessment({"assessmentType": "compliance"})
    stats = client.get("/v1/stats", headers=ADMIN).json()
    assert stats["totalAssessments"] == stats["total"] == 3
    assert stats["activeAssessments"] == stats["active"] == 1
    assert (stats["completedAssessments"], stats["failedAssessments"]) == (0, 2)
    assert stats["averageProcessingTime"] == pytest.approx(
        (stats["averageProcessingSeconds"] or 0) * 1000, abs=0.01
    )
    assert isinstance(stats["throughputPerMinute"], float) and stats["errorRate"] == 1.0


@pytest.mark.parametrize(
    ("where", "timeout"),
    [("timeout", 30_000), ("timeout", 300_000), ("options.timeout", 300_000)],
)
def test_a_timeout_in_milliseconds_is_refused_saying_the_unit(
    client: TestClient, where: str, timeout: int
) -> None:
    body: dict[str, object] = {"assessmentType": "compliance"}
    if where == "timeout":
        body["timeout"] = timeout
    else:
        body["options"] = {"timeout": timeout}
    error = client.post("/v1/assessments", headers=ADMIN, json=body).json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["message"].startswith(f"{where}: ")
    assert "seconds" in error["message"] and "milliseconds" in error["message"]
    assert f"{timeout / 1000:g} seconds?" in error["message"]


def test_a_wait_timeout_in_milliseconds_is_refused_saying_the_unit(client: TestClient) -> None:
    response = client.get("/v1/assessments/x/wait", params={"timeout": 30000}, headers=ADMIN)
    error = response.json()["error"]
    assert response.status_code == 422 and error["message"].startswith("timeout: ")
    assert "at most 300 seconds" in error["message"] and "30 seconds?" in error["message"]
