"""The HTTP API in-process (FastAPI's TestClient) on a real store and database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from assessment_store.http.app import create_app
from assessment_store.http.auth import Role, issue_token
from assessment_store.service import AssessmentStore

SECRET = "test-secret-0123456789abcdef-not-a-placeholder"


def bearer(
    subject: str, role: Role, secret: str = SECRET, ttl: timedelta = timedelta(hours=1)
) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(secret, subject, role, ttl)}"}


@pytest.fixture
def client(store: AssessmentStore) -> Iterator[TestClient]:
    app = create_app(store, SECRET, max_body_bytes=64 * 1024)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def as_user() -> Callable[[str, Role], dict[str, str]]:
    return bearer
