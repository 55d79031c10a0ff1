"""GET /v1/assessments?q= and POST /v1/assessments/progress over HTTP: shapes, roles,
errors that name the fields."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text

from assessment_store.http.auth import Role
from assessment_store.service import AssessmentStore
from tests.chain import audit_chain_problems
from tests.factories import processing, request
from tests.http.conftest import bearer

ADMIN = bearer("root", Role.ADMIN)
ALICE = bearer("alice", Role.PRODUCER)
VIEWER = bearer("alice", Role.VIEWER)
JSON = {"Content-Type": "application/json"}


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


# -- search -----------------------------------------------------------------------


def test_q_searches_and_producers_see_only_their_own(
    client: TestClient, store: AssessmentStore
) -> None:
    mine = store.create_assessment(
        request(server_name="Billing-DB.example:5432"), created_by="alice"
    )
    theirs = store.create_assessment(
        request(server_name="billing-db.example:5433"), created_by="bob"
    )
    store.create_assessment(request(server_name="web.example:443"), created_by="alice")

    def found(headers: dict[str, str], **params: Any) -> list[str]:
        response = client.get("/v1/assessments", params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [item["assessmentId"] for item in response.json()["items"]]

    assert found(ALICE, q="BILLING-db") == [mine]
    assert found(VIEWER, q="billing") == [mine]
    assert sorted(found(ADMIN, q="billing-db")) == sorted([mine, theirs])
    assert found(ADMIN, q="billing", state="completed") == []
    page = client.get("/v1/assessments", params={"q": "billing", "limit": 1}, headers=ADMIN)
    rest = client.get(
        "/v1/assessments",
        params={"q": "billing", "limit": 1, "cursor": page.json()["nextCursor"]},
        headers=ADMIN,
    )
    assert {page.json()["items"][0]["assessmentId"], rest.json()["items"][0]["assessmentId"]} == {
        mine,
        theirs,
    }
    assert rest.json()["nextCursor"] is None


@pytest.mark.parametrize(
    ("q", "problem"),
    [("x" * 201, "at most 200"), ("a\x00b", "NUL"), ("a\tb", "control"), ("", "at least 1")],
)
def test_a_bad_q_is_422_naming_q(client: TestClient, q: str, problem: str) -> None:
    error = error_of(client.get("/v1/assessments", params={"q": q}, headers=ALICE), 422)
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"][0]["field"] == "q" and problem in error["message"], error


# -- batch progress -----------------------------------------------------------------


def test_batch_progress_answers_each_update_in_order(
    client: TestClient, store: AssessmentStore, raw_conn: Connection
) -> None:
    running = processing(store)
    pending = store.create_assessment(request())
    body = {
        "updates": [
            {"assessmentId": running.assessment_id, "progress": 40, "message": "halfway"},
            {"assessmentId": "nope", "progress": 40},
            {"assessmentId": pending, "progress": 40, "expectedVersion": 1},
            {"assessmentId": running.assessment_id, "progress": 60, "expectedVersion": 1},
            {"assessmentId": running.assessment_id, "progress": 101},
        ]
    }
    response = client.post("/v1/assessments/progress", headers=ADMIN, json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[0] == {
        "assessmentId": running.assessment_id,
        "ok": True,
        "version": running.version + 1,
    }
    assert [set(r) for r in results[1:]] == [{"assessmentId", "ok", "error"}] * 4
    assert [(r["assessmentId"], r["ok"], r["error"]["code"]) for r in results[1:]] == [
        ("nope", False, "ASSESSMENT_NOT_FOUND"),
        (pending, False, "INVALID_STATE_TRANSITION"),
        (running.assessment_id, False, "VERSION_CONFLICT"),
        (running.assessment_id, False, "VALIDATION_ERROR"),
    ]
    assert all(set(r["error"]) == {"code", "message"} for r in results[1:])
    trail = client.get(f"/v1/assessments/{running.assessment_id}/audit", headers=ADMIN).json()
    assert trail["entries"][-1]["changedBy"] == "root"
    assert [e["versionTo"] for e in trail["entries"]] == [1, 2, 3]
    assert audit_chain_problems(raw_conn) == []


@pytest.mark.parametrize("headers", [ALICE, VIEWER])
def test_only_admins_may_batch_progress_and_are_checked_before_the_body(
    client: TestClient, store: AssessmentStore, headers: dict[str, str]
) -> None:
    running = processing(store)
    body = {"updates": [{"assessmentId": running.assessment_id, "progress": 40}]}
    error = error_of(client.post("/v1/assessments/progress", headers=headers, json=body), 403)
    assert error["code"] == "FORBIDDEN"
    garbage = json.dumps({f"k{i}": 1 for i in range(2000)})
    response = client.post("/v1/assessments/progress", headers={**headers, **JSON}, content=garbage)
    assert error_of(response, 403)["code"] == "FORBIDDEN" and len(response.content) < 300
    assert store.get_state(running.assessment_id).progress == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"updates": [{"assessmentId": "a", "progress": "40"}]}, "updates.0.progress"),
        ({"updates": [{"assessmentId": "a", "progress": 40.0}]}, "updates.0.progress"),
        ({"updates": [{"assessmentId": "a", "progress": True}]}, "updates.0.progress"),
        ({"updates": [{"assessmentId": "a"}]}, "updates.0.progress"),
        ({"updates": [{"progress": 1}]}, "updates.0.assessmentId"),
        ({"updates": [{"assessmentId": 7, "progress": 1}]}, "updates.0.assessmentId"),
        (
            {"updates": [{"assessmentId": "a", "progress": 1, "expectedVersion": "2"}]},
            "updates.0.expectedVersion",
        ),
        ({"updates": [{"assessmentId": "a", "progress": 1, "message": 5}]}, "updates.0.message"),
        ({"updates": [{"assessmentId": "a", "progress": 1, "extra": 1}]}, "updates.0.extra"),
        ({"updates": []}, "updates"),
        ({"updates": [{"assessmentId": "a", "progress": 1}] * 1001}, "updates"),
        ({"update": []}, "updates"),
    ],
)
def test_a_malformed_batch_is_422_naming_the_field_and_applies_nothing(
    client: TestClient,
    store: AssessmentStore,
    raw_conn: Connection,
    body: dict[str, Any],
    field: str,
) -> None:
    running = processing(store)
    error = error_of(client.post("/v1/assessments/progress", headers=ADMIN, json=body), 422)
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"][0]["field"] == field, error
    audits = raw_conn.execute(text("SELECT count(*) FROM assessment_state_audit")).scalar_one()
    assert audits == 2 and store.get_state(running.assessment_id).version == running.version
