"""Schemathesis against the OpenAPI schema: whatever it sends, no 5xx.

Driven through schemathesis's Python API with hypothesis (its pytest plugin does not
support pytest 9 yet): every operation, as an admin, a viewer and anonymously.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err

from assessment_store.http.app import create_app
from assessment_store.http.auth import Role
from assessment_store.service import AssessmentStore
from tests.http.conftest import SECRET, bearer

CALLERS: tuple[dict[str, str], ...] = (
    bearer("fuzz", Role.ADMIN),
    bearer("fuzz", Role.VIEWER),
    {},
)


def operations(store: AssessmentStore) -> list[Any]:
    app = create_app(store, SECRET, max_body_bytes=64 * 1024)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    found = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        found.append(result.ok())
    return found


def test_the_schema_lists_every_endpoint(store: AssessmentStore) -> None:
    paths = {(op.method.upper(), op.path) for op in operations(store)}
    assert {
        ("POST", "/v1/assessments"),
        ("POST", "/v1/assessments/batch"),
        ("GET", "/v1/assessments"),
        ("GET", "/v1/assessments/{assessment_id}"),
        ("GET", "/v1/assessments/{assessment_id}/wait"),
        ("POST", "/v1/assessments/{assessment_id}/cancel"),
        ("GET", "/v1/assessments/{assessment_id}/audit"),
        ("GET", "/v1/stats"),
        ("GET", "/health"),
        ("GET", "/ready"),
        ("GET", "/metrics"),
    } <= paths


@pytest.mark.timeout(600)
def test_no_generated_request_gets_a_server_error(store: AssessmentStore) -> None:
    store.create_assessment(
        {"assessmentType": "health", "serverName": "db1", "id": "known-1"}, created_by="fuzz"
    )
    for operation in operations(store):

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            database=None,
            derandomize=True,  # the same cases every run: CI never meets a new one at random
            suppress_health_check=list(HealthCheck),
        )
        def no_server_error(case: Any) -> None:
            if case.path.endswith("/wait"):
                case.query = {**(case.query or {}), "timeout": 0.05}
            for headers in CALLERS:
                response = case.call(headers=headers)
                case.validate_response(response, checks=[not_a_server_error])
                assert response.status_code < 500, (case.path, response.text)

        no_server_error()
