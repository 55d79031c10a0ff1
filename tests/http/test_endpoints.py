"""Every endpoint, its happy path in camelCase, and every error code of SPEC section 6."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from assessment_store.http.auth import Role
from assessment_store.service import AssessmentStore
from tests.http.conftest import bearer

Auth = Callable[[str, Role], dict[str, str]]
ALICE = bearer("alice", Role.PRODUCER)
BOB = bearer("bob", Role.PRODUCER)
ADMIN = bearer("root", Role.ADMIN)
VIEWER_ALICE = bearer("alice", Role.VIEWER)


def create(client: TestClient, headers: dict[str, str] = ALICE, **fields: object) -> str:
    body = {"assessmentType": "health", "serverName": "db1:5432", **fields}
    response = client.post("/v1/assessments", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["assessmentId"])


def test_create_then_get_in_camel_case(client: TestClient) -> None:
    response = client.post(
        "/v1/assessments",
        headers=ALICE,
        json={
            "assessmentType": "security",
            "serverName": "web:443",
            "priority": 9,
            "options": {"includeDetails": True},
        },
    )
    assert response.status_code == 201
    created = response.json()
    assert created["state"] == "pending" and created["assessmentId"]
    got = client.get(f"/v1/assessments/{created['assessmentId']}", headers=ALICE).json()
    assert got["assessmentId"] == created["assessmentId"]
    assert got["requestData"]["serverName"] == "web:443"
    assert got["requestData"]["options"]["includeDetails"] is True
    assert (got["state"], got["version"], got["priority"], got["createdBy"]) == (
        "pending",
        1,
        9,
        "alice",
    )
    assert "retryCount" in got and "nextRetryAt" in got and "completedAt" in got


def test_a_client_id_makes_creation_idempotent_and_a_changed_request_conflicts(
    client: TestClient,
) -> None:
    first = create(client, id="order-7")
    assert create(client, id="order-7") == first
    response = client.post(
        "/v1/assessments",
        headers=ALICE,
        json={"id": "order-7", "assessmentType": "security", "serverName": "db1:443"},
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "ASSESSMENT_CONFLICT"


def test_batch_create_is_all_or_nothing(client: TestClient, store: AssessmentStore) -> None:
    response = client.post(
        "/v1/assessments/batch",
        headers=ALICE,
        json={
            "assessments": [
                {"assessmentType": "health", "serverName": "db1"},
                {"assessmentType": "compliance", "priority": 2},
            ]
        },
    )
    assert response.status_code == 201
    assert len(response.json()["assessmentIds"]) == 2
    bad = client.post(
        "/v1/assessments/batch",
        headers=ALICE,
        json={
            "assessments": [
                {"assessmentType": "compliance"},
                {"assessmentType": "compliance", "priority": 0},
            ]
        },
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "assessments.1.priority"
    assert store.get_assessment_stats().total == 2


def test_list_filters_and_keyset_pages(client: TestClient, store: AssessmentStore) -> None:
    ids = [create(client, priority=p) for p in range(1, 8)]
    create(client, headers=BOB)
    store.start_processing(ids[0], "w1")
    page = client.get("/v1/assessments", params={"limit": 3}, headers=ALICE).json()
    assert len(page["items"]) == 3 and page["nextCursor"]
    seen = [i["assessmentId"] for i in page["items"]]
    while page["nextCursor"]:
        page = client.get(
            "/v1/assessments", params={"limit": 3, "cursor": page["nextCursor"]}, headers=ALICE
        ).json()
        seen += [i["assessmentId"] for i in page["items"]]
    assert sorted(seen) == sorted(ids), "alice sees exactly her seven"
    running = client.get("/v1/assessments", params={"state": "processing"}, headers=ALICE)
    assert [i["assessmentId"] for i in running.json()["items"]] == [ids[0]]
    both = client.get(
        "/v1/assessments", params=[("state", "pending"), ("state", "processing")], headers=ADMIN
    ).json()
    assert len(both["items"]) == 8
    typed = client.get("/v1/assessments", params={"type": "security"}, headers=ALICE).json()
    assert typed["items"] == []


def test_cancel_with_a_reason(client: TestClient) -> None:
    assessment_id = create(client)
    response = client.post(
        f"/v1/assessments/{assessment_id}/cancel", headers=ALICE, json={"reason": "not needed"}
    )
    assert response.status_code == 200
    assert (response.json()["state"], response.json()["message"]) == ("cancelled", "not needed")
    again = client.post(f"/v1/assessments/{assessment_id}/cancel", headers=ALICE)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "INVALID_STATE_TRANSITION"


def test_retry_puts_a_dead_letter_back_to_pending_with_a_compare_and_set(
    client: TestClient, store: AssessmentStore
) -> None:
    assessment_id = create(client)
    store.start_processing(assessment_id, "w1")
    dead = store.fail_assessment(assessment_id, "no route to host", permanent=True)
    assert dead.is_finished
    stale = client.post(
        f"/v1/assessments/{assessment_id}/retry",
        headers=ALICE,
        json={"expectedVersion": dead.version - 1},
    )
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "VERSION_CONFLICT"
    assert client.post(f"/v1/assessments/{assessment_id}/retry", headers=BOB).status_code == 404
    response = client.post(
        f"/v1/assessments/{assessment_id}/retry",
        headers=ALICE,
        json={"expectedVersion": dead.version},
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["retryCount"], body["errorMessage"]) == ("pending", 1, None)
    trail = store.get_audit_trail(assessment_id)
    assert (trail[-1].event, trail[-1].changed_by) == ("retry", "alice")
    again = client.post(f"/v1/assessments/{assessment_id}/retry", headers=ALICE)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "INVALID_STATE_TRANSITION"


def test_audit_and_stats(client: TestClient, store: AssessmentStore) -> None:
    assessment_id = create(client)
    store.start_processing(assessment_id, "w1")
    store.complete_assessment(assessment_id, {"ok": True})
    trail = client.get(f"/v1/assessments/{assessment_id}/audit", headers=ALICE).json()
    assert [(e["versionTo"], e["event"]) for e in trail["entries"]] == [
        (1, "create"),
        (2, "start"),
        (3, "complete"),
    ]
    stats = client.get("/v1/stats", headers=ALICE).json()
    assert stats["countsByState"]["completed"] == 1 and stats["total"] == 1
    assert "throughputPerMinute" in stats and "errorRate" in stats


def test_wait_returns_the_finished_assessment_or_408(
    client: TestClient, store: AssessmentStore
) -> None:
    assessment_id = create(client)
    response = client.get(
        f"/v1/assessments/{assessment_id}/wait", params={"timeout": 0.3}, headers=ALICE
    )
    assert response.status_code == 408
    assert response.json()["error"]["code"] == "ASSESSMENT_TIMEOUT"
    store.cancel_assessment(assessment_id)
    done = client.get(f"/v1/assessments/{assessment_id}/wait", params={"timeout": 5}, headers=ALICE)
    assert done.status_code == 200 and done.json()["state"] == "cancelled"


def test_health_ready_and_metrics_need_no_token(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert set(ready.json()["components"]) == {"database", "redis", "broker"}
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "assessmentstore_assessments" in metrics.text
    assert "assessmentstore_queue_depth" in metrics.text


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "code"),
    [
        ("get", "/v1/assessments/nope", ALICE, None, 404, "ASSESSMENT_NOT_FOUND"),
        ("get", "/v1/assessments", {}, None, 401, "UNAUTHORIZED"),
        (
            "get",
            "/v1/assessments",
            {"Authorization": "Bearer not.a.jwt"},
            None,
            401,
            "UNAUTHORIZED",
        ),
        ("get", "/v1/assessments", {"Authorization": "Basic abc"}, None, 401, "UNAUTHORIZED"),
        (
            "get",
            "/v1/assessments",
            bearer("x", Role.ADMIN, secret="another-secret-entirely-0123456789abcdef"),
            None,
            401,
            "UNAUTHORIZED",
        ),
        (
            "get",
            "/v1/assessments",
            bearer("x", Role.ADMIN, ttl=timedelta(seconds=-5)),
            None,
            401,
            "UNAUTHORIZED",
        ),
        ("post", "/v1/assessments", VIEWER_ALICE, {"assessmentType": "health"}, 403, "FORBIDDEN"),
        (
            "post",
            "/v1/assessments",
            ALICE,
            {"assessmentType": "health", "priority": 11},
            422,
            "VALIDATION_ERROR",
        ),
        ("post", "/v1/assessments", ALICE, {"assessmentType": "nope"}, 422, "VALIDATION_ERROR"),
        (
            "post",
            "/v1/assessments",
            ALICE,
            {"assessmentType": "health", "bogus": 1},
            422,
            "VALIDATION_ERROR",
        ),
        ("get", "/v1/assessments?limit=0", ALICE, None, 422, "VALIDATION_ERROR"),
        ("get", "/v1/assessments?cursor=garbage", ALICE, None, 422, "VALIDATION_ERROR"),
        ("get", "/v1/assessments?state=paused", ALICE, None, 422, "VALIDATION_ERROR"),
        ("get", "/v1/assessments/x/wait?timeout=-1", ALICE, None, 422, "VALIDATION_ERROR"),
        ("delete", "/v1/assessments", ALICE, None, 405, "METHOD_NOT_ALLOWED"),
        # NUL cannot be stored in PostgreSQL text: found by the schemathesis run.
        ("get", "/v1/assessments/a%00b", ALICE, None, 422, "VALIDATION_ERROR"),
        ("get", "/v1/assessments?server=a%00b", ALICE, None, 422, "VALIDATION_ERROR"),
        (
            "post",
            "/v1/assessments",
            ALICE,
            {"assessmentType": "health", "serverName": "a\x00"},
            422,
            "VALIDATION_ERROR",
        ),
        ("post", "/v1/assessments/x%00/cancel", ALICE, None, 422, "VALIDATION_ERROR"),
        # A cursor whose id is a lone surrogate (found in review): not ours, so 422.
        (
            "get",
            "/v1/assessments?cursor=WyIyMDI0LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwgIlx1ZDgwMCJd",
            ALICE,
            None,
            422,
            "VALIDATION_ERROR",
        ),
        # Undecodable bytes in the path reach us as replacement characters: no such id.
        ("get", "/v1/assessments/%ED%A0%80", ALICE, None, 404, "ASSESSMENT_NOT_FOUND"),
        ("get", "/v2/nothing", ALICE, None, 404, "NOT_FOUND"),
    ],
)
def test_errors_have_the_spec_body_and_status(
    client: TestClient,
    method: str,
    path: str,
    headers: dict[str, str],
    body: object,
    status: int,
    code: str,
) -> None:
    response = client.request(method, path, headers=headers, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


def test_a_stale_expected_version_is_a_409_version_conflict(
    client: TestClient, store: AssessmentStore
) -> None:
    assessment_id = create(client)
    store.start_processing(assessment_id, "w1")
    stale = client.post(
        f"/v1/assessments/{assessment_id}/cancel",
        headers=ALICE,
        json={"reason": "late", "expectedVersion": 1},
    )
    assert stale.status_code == 409
    assert stale.json()["error"]["code"] == "VERSION_CONFLICT"
    assert store.get_state(assessment_id).state.value == "processing", "nothing written"
    fresh = client.post(
        f"/v1/assessments/{assessment_id}/cancel", headers=ALICE, json={"expectedVersion": 2}
    )
    assert fresh.status_code == 200 and fresh.json()["version"] == 3


def test_malformed_json_and_oversized_bodies_are_refused_cleanly(client: TestClient) -> None:
    broken = client.post(
        "/v1/assessments",
        headers={**ALICE, "Content-Type": "application/json"},
        content=b"{not json",
    )
    assert broken.status_code == 422
    assert broken.json()["error"]["code"] == "VALIDATION_ERROR"
    huge = client.post(
        "/v1/assessments",
        headers=ALICE,
        json={"assessmentType": "health", "serverName": "x" * 100_000},
    )
    assert huge.status_code == 413
    assert huge.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_producers_see_only_their_own_and_admins_see_all(client: TestClient) -> None:
    mine = create(client, headers=ALICE)
    theirs = create(client, headers=BOB)
    assert client.get(f"/v1/assessments/{theirs}", headers=ALICE).status_code == 404
    assert client.get(f"/v1/assessments/{theirs}/audit", headers=ALICE).status_code == 404
    assert client.post(f"/v1/assessments/{theirs}/cancel", headers=ALICE).status_code == 404
    assert (
        client.get(f"/v1/assessments/{theirs}/wait?timeout=0.1", headers=ALICE).status_code == 404
    )
    assert client.get(f"/v1/assessments/{mine}", headers=VIEWER_ALICE).status_code == 200
    assert client.post(f"/v1/assessments/{mine}/cancel", headers=VIEWER_ALICE).status_code == 403
    # Asking for another creator's is refused, not silently answered with one's own.
    others = client.get("/v1/assessments", params={"createdBy": "bob"}, headers=ALICE)
    assert others.status_code == 403 and others.json()["error"]["code"] == "FORBIDDEN"
    listed = client.get("/v1/assessments", params={"createdBy": "alice"}, headers=ALICE).json()
    assert [i["assessmentId"] for i in listed["items"]] == [mine]
    assert client.get("/v1/stats", headers=ALICE).json()["total"] == 1
    assert client.get("/v1/stats", headers=ADMIN).json()["total"] == 2
    assert client.get(f"/v1/assessments/{theirs}", headers=ADMIN).status_code == 200


def test_api_metrics_move_as_work_happens(client: TestClient, store: AssessmentStore) -> None:
    from tests.acceptance.test_metrics import sample

    before = client.get("/metrics").text
    created_before = sample(
        before, "assessmentstore_assessments_created_total", assessment_type="health"
    )
    assessment_id = create(client)
    create(client)
    store.start_processing(assessment_id, "w1")
    after = client.get("/metrics").text
    assert (
        sample(after, "assessmentstore_assessments_created_total", assessment_type="health")
        == created_before + 2
    )
    assert sample(after, "assessmentstore_assessments", state="pending") == 1
    assert sample(after, "assessmentstore_assessments", state="processing") == 1
    assert sample(after, "assessmentstore_oldest_pending_age_seconds") > 0
    for queue in ("assessments.high", "assessments.normal", "assessments.low", "maintenance"):
        assert f'assessmentstore_queue_depth{{queue="{queue}"}}' in after
