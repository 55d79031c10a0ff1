"""Bad input from the outside: each case is one that was once answered outside the
contract (a 400, a coerced value, a huge error body, a silent substitution)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text

from assessment_store.http.auth import ALGORITHM, Role
from tests.http.conftest import SECRET, bearer

ALICE = bearer("alice", Role.PRODUCER)
BOB = bearer("bob", Role.PRODUCER)
VIEWER = bearer("vic", Role.VIEWER)
ADMIN = bearer("root", Role.ADMIN)
JSON = {"Content-Type": "application/json"}
LIMIT = 64 * 1024  # the test app's body limit (tests/http/conftest.py)


def rows(raw_conn: Connection) -> int:
    count = raw_conn.execute(text("SELECT count(*) FROM assessment_states")).scalar_one()
    raw_conn.rollback()
    return int(count)


def refused(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code and error["message"]
    return error


def token(**claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt.encode(claims, SECRET, algorithm=ALGORITHM)}"}


# -- tokens ------------------------------------------------------------------------


def test_a_token_without_exp_is_refused(client: TestClient) -> None:
    headers = token(sub="alice", role="admin", iat=int(time.time()))
    error = refused(client.get("/v1/assessments", headers=headers), 401, "UNAUTHORIZED")
    assert "exp" in error["message"]


def test_a_token_living_longer_than_the_maximum_is_refused(client: TestClient) -> None:
    now = int(time.time())
    year = {"sub": "alice", "role": "admin", "iat": now, "exp": now + 365 * 86_400}
    error = refused(client.get("/v1/assessments", headers=token(**year)), 401, "UNAUTHORIZED")
    assert "lifetime" in error["message"]
    # Without iat, the lifetime counts from now.
    no_iat = {"sub": "alice", "role": "admin", "exp": now + 30 * 86_400}
    refused(client.get("/v1/assessments", headers=token(**no_iat)), 401, "UNAUTHORIZED")
    week = bearer("alice", Role.ADMIN, ttl=timedelta(days=7))
    assert client.get("/v1/assessments", headers=week).status_code == 200


# -- bodies ------------------------------------------------------------------------


def chunks(total: int, size: int = 16 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


def test_a_chunked_body_over_the_limit_is_413_like_a_declared_one(
    client: TestClient, raw_conn: Connection
) -> None:
    headers = {**ALICE, **JSON}
    response = client.post("/v1/assessments", headers=headers, content=chunks(3 * LIMIT))
    error = refused(response, 413, "PAYLOAD_TOO_LARGE")
    assert str(LIMIT) in error["message"]
    # A chunked body under the limit is read as any other.
    body = json.dumps({"assessmentType": "compliance"}).encode()
    small = client.post("/v1/assessments", headers=headers, content=iter([body[:10], body[10:]]))
    assert small.status_code == 201, small.text
    assert rows(raw_conn) == 1


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"assessmentType": "compliance", "serverName": "\xff\xfe"}', "UTF-8"),
        (b'{"assessmentType": "compliance"', "not valid JSON"),
        (b'{"assessmentType": "compliance", "priority": ' + b"9" * 5000 + b"}", "digits"),
        (b'{"assessmentType": "compliance", "timeout": NaN}', "NaN"),
        (b'{"assessmentType": "compliance", "timeout": Infinity}', "Infinity"),
        (b"[" * 30_000 + b"]" * 30_000, "nested"),
    ],
)
def test_a_body_json_cannot_hold_is_422_naming_the_body(
    client: TestClient, raw_conn: Connection, body: bytes, problem: str
) -> None:
    error = refused(
        client.post("/v1/assessments", headers={**ALICE, **JSON}, content=body),
        422,
        "VALIDATION_ERROR",
    )
    assert error["message"].startswith("body: ") and problem in error["message"]
    assert error["details"] == [{"field": "body", "message": error["message"][6:]}]
    assert rows(raw_conn) == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"priority": True}, "priority"),
        ({"priority": "5"}, "priority"),
        ({"priority": 5.0}, "priority"),
        ({"timeout": "30"}, "timeout"),
        ({"timeout": False}, "timeout"),
        ({"options": {"deepScan": 1}}, "options.deepScan"),
        ({"options": {"includeDetails": "true"}}, "options.includeDetails"),
        ({"options": {"timeout": True}}, "options.timeout"),
    ],
)
def test_json_types_are_strict(
    client: TestClient, raw_conn: Connection, fields: dict[str, Any], field: str
) -> None:
    body = {"assessmentType": "compliance", **fields}
    error = refused(
        client.post("/v1/assessments", headers=ALICE, json=body), 422, "VALIDATION_ERROR"
    )
    assert error["details"][0]["field"] == field
    assert rows(raw_conn) == 0


def test_a_stale_version_must_be_an_integer_too(client: TestClient) -> None:
    created = client.post("/v1/assessments", headers=ALICE, json={"assessmentType": "compliance"})
    assessment_id = created.json()["assessmentId"]
    response = client.post(
        f"/v1/assessments/{assessment_id}/cancel", headers=ALICE, json={"expectedVersion": "1"}
    )
    assert refused(response, 422, "VALIDATION_ERROR")["details"][0]["field"] == "expectedVersion"


def test_an_error_body_stays_small_whatever_the_request(client: TestClient) -> None:
    unknown = {f"{'k' * 200}{i}": 1 for i in range(250)}  # ~55 KB of unknown keys
    body = json.dumps({"assessmentType": "compliance", **unknown})
    response = client.post("/v1/assessments", headers={**ALICE, **JSON}, content=body)
    error = refused(response, 422, "VALIDATION_ERROR")
    assert len(response.content) < 10_000, len(response.content)
    assert "249 more" in error["message"] and len(error["details"]) == 20


def test_a_viewer_is_refused_before_its_body_is_validated(client: TestClient) -> None:
    body = json.dumps({f"k{i}": 1 for i in range(2000)})
    response = client.post("/v1/assessments", headers={**VIEWER, **JSON}, content=body)
    refused(response, 403, "FORBIDDEN")
    assert len(response.content) < 300


def test_a_wait_timeout_must_be_finite(client: TestClient) -> None:
    response = client.get("/v1/assessments/x/wait", params={"timeout": "nan"}, headers=ALICE)
    error = refused(response, 422, "VALIDATION_ERROR")
    assert error["details"][0]["field"] == "timeout" and "finite" in error["message"]


# -- query parameters are named as sent -------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"type": "x" * 65}, "type"),
        ({"server": "a\x00b"}, "server"),
        ({"state": "paused"}, "state"),
        ({"createdAfter": "2026-01-01T00:00:00"}, "createdAfter"),
        ({"createdBefore": "yesterday"}, "createdBefore"),
        ({"limit": "true"}, "limit"),
        ({"cursor": "not-ours"}, "cursor"),
    ],
)
def test_query_errors_name_the_parameter_as_sent(
    client: TestClient, params: dict[str, str], field: str
) -> None:
    error = refused(
        client.get("/v1/assessments", params=params, headers=ALICE), 422, "VALIDATION_ERROR"
    )
    sent = error["message"].split(":")[0].split(".")[0]  # "state.0" is the first state
    assert sent == field, error["message"]


# -- requests no worker could run --------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"assessmentType": "health"}, "serverName"),
        ({"assessmentType": "security", "serverName": "ftp://x"}, "serverName"),
        ({"assessmentType": "health", "serverName": "evil\u202egro.com"}, "serverName"),
        ({"assessmentType": "compliance", "serverName": "db\u20661"}, "serverName"),
        ({"assessmentType": "compliance", "serverName": "db\x1b[31m"}, "serverName"),
        ({"assessmentType": "health", "serverName": "a b.example"}, "serverName"),
    ],
)
def test_a_request_no_worker_could_run_is_refused_at_creation(
    client: TestClient, raw_conn: Connection, fields: dict[str, Any], field: str
) -> None:
    error = refused(
        client.post("/v1/assessments", headers=ALICE, json=fields), 422, "VALIDATION_ERROR"
    )
    assert error["message"].startswith(f"{field}: ")
    assert rows(raw_conn) == 0


def test_a_batch_names_the_request_no_worker_could_run(
    client: TestClient, raw_conn: Connection
) -> None:
    batch = {
        "assessments": [
            {"assessmentType": "health", "serverName": "db1:5432"},
            {"assessmentType": "security"},
        ]
    }
    response = client.post("/v1/assessments/batch", headers=ALICE, json=batch)
    assert refused(response, 422, "VALIDATION_ERROR")["message"].startswith(
        "assessments.1.serverName: "
    )
    assert rows(raw_conn) == 0


# -- client ids and creators -------------------------------------------------------


def test_another_producers_client_id_is_in_use_and_nothing_more_is_told(
    client: TestClient,
) -> None:
    body = {"id": "order-1", "assessmentType": "health", "serverName": "db-secret-name:5432"}
    assert client.post("/v1/assessments", headers=ALICE, json=body).status_code == 201
    for attempt in (body, {**body, "serverName": "elsewhere"}):
        error = refused(
            client.post("/v1/assessments", headers=BOB, json=attempt), 409, "ASSESSMENT_CONFLICT"
        )
        assert "already in use" in error["message"]
        assert "different request" not in error["message"]
        assert "alice" not in error["message"] and "db-secret-name" not in error["message"]
    # The owner's own repeat is still idempotent, and its own change still explained.
    assert client.post("/v1/assessments", headers=ALICE, json=body).status_code == 201
    changed = client.post("/v1/assessments", headers=ALICE, json={**body, "serverName": "db2:5432"})
    assert "different request" in refused(changed, 409, "ASSESSMENT_CONFLICT")["message"]


def test_a_producer_asking_for_another_creator_is_refused_not_substituted(
    client: TestClient,
) -> None:
    mine = client.post("/v1/assessments", headers=ALICE, json={"assessmentType": "compliance"})
    client.post("/v1/assessments", headers=BOB, json={"assessmentType": "compliance"})
    for headers in (ALICE, bearer("alice", Role.VIEWER)):
        response = client.get("/v1/assessments", params={"createdBy": "bob"}, headers=headers)
        assert "createdBy" in refused(response, 403, "FORBIDDEN")["message"]
    own = client.get("/v1/assessments", params={"createdBy": "alice"}, headers=ALICE).json()
    assert [i["assessmentId"] for i in own["items"]] == [mine.json()["assessmentId"]]
    bobs = client.get("/v1/assessments", params={"createdBy": "bob"}, headers=ADMIN).json()
    assert [i["createdBy"] for i in bobs["items"]] == ["bob"]
