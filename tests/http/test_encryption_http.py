"""The HTTP API with encryption at rest: answers carry the plaintext; a value the API
cannot decrypt is a clear 500 DECRYPTION_FAILED without key material or traceback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from assessment_store.config import Settings
from assessment_store.http.app import create_app
from assessment_store.http.auth import Role
from assessment_store.service import AssessmentStore
from tests.encrypted import (
    ERROR_SECRET,
    K1,
    K2,
    OPTION_SECRET,
    RESULT_SECRET,
    raw_values,
    with_keys,
)
from tests.factories import quiet_store
from tests.http.conftest import SECRET, bearer

ALICE = bearer("alice", Role.PRODUCER)


@pytest.fixture
def keyed(settings: Settings) -> Iterator[AssessmentStore]:
    store = quiet_store(with_keys(settings, f"k1:{K1}"))
    yield store
    store.close()


def client_of(store: AssessmentStore) -> TestClient:
    return TestClient(create_app(store, SECRET), raise_server_exceptions=False)


def test_answers_carry_the_plaintext_and_the_database_does_not(
    keyed: AssessmentStore, raw_engine: Engine
) -> None:
    with client_of(keyed) as client:
        body = {
            "assessmentType": "health",
            "serverName": "db1:5432",
            "options": {"serverFilter": [OPTION_SECRET]},
        }
        created = client.post("/v1/assessments", json=body, headers=ALICE)
        assert created.status_code == 201, created.text
        done = created.json()["assessmentId"]
        failing = client.post("/v1/assessments", json=body, headers=ALICE).json()["assessmentId"]
        keyed.start_processing(done, "w")
        keyed.complete_assessment(done, {"finding": RESULT_SECRET})
        keyed.start_processing(failing, "w")
        keyed.fail_assessment(failing, ERROR_SECRET, permanent=True)
        got = client.get(f"/v1/assessments/{done}", headers=ALICE).json()
        assert got["requestData"]["options"]["serverFilter"] == [OPTION_SECRET]
        assert got["resultData"] == {"finding": RESULT_SECRET}
        failed = client.get(f"/v1/assessments/{failing}", headers=ALICE).json()
        assert failed["errorMessage"] == ERROR_SECRET
        listed = client.get("/v1/assessments?state=failed", headers=ALICE).json()
        assert [item["errorMessage"] for item in listed["items"]] == [ERROR_SECRET]
        audit = client.get(f"/v1/assessments/{failing}/audit", headers=ALICE)
        assert audit.status_code == 200, audit.text
        assert ERROR_SECRET in audit.text
        waited = client.get(f"/v1/assessments/{done}/wait?timeout=1", headers=ALICE)
        assert waited.json()["result"] == {"finding": RESULT_SECRET}
    raw = raw_values(raw_engine)
    assert not [s for s in (OPTION_SECRET, RESULT_SECRET, ERROR_SECRET) if s in raw]


@pytest.mark.parametrize("ring", [None, f"k2:{K2}", f"k1:{K2}"], ids=["off", "missing", "wrong"])
def test_a_value_the_api_cannot_decrypt_is_a_clear_500(
    keyed: AssessmentStore,
    settings: Settings,
    ring: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assessment_id = keyed.create_assessment({"assessmentType": "health", "serverName": "a:1"})
    with quiet_store(with_keys(settings, ring)) as other, client_of(other) as client:
        for path in (f"/v1/assessments/{assessment_id}", "/v1/assessments"):
            response = client.get(path, headers=bearer("root", Role.ADMIN))
            assert response.status_code == 500
            error = response.json()["error"]
            assert error["code"] == "DECRYPTION_FAILED"
            assert "'k1'" in error["message"] and "ENCRYPTION_KEYS" in error["message"]
            for forbidden in (K1, K2, "Traceback", "InvalidTag"):
                assert forbidden not in response.text
                assert forbidden not in caplog.text
