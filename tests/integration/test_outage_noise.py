"""An expected outage is news once: no traceback per create or per metrics scrape,
and /metrics says which source of its gauges did not answer."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection, text

from assessment_store import AssessmentStore, bootstrap
from assessment_store.config import Settings
from assessment_store.demo.processes import free_port
from assessment_store.dispatch import Dispatcher, DispatchItem
from assessment_store.http.app import create_app
from tests.factories import request

SECRET = "outage-test-secret-0123456789abcdef-not-real"


def dead_url(scheme: str) -> str:
    return f"{scheme}://127.0.0.1:{free_port()}/0"  # nothing listens there


def samples(client: TestClient) -> dict[tuple[str, str], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name.startswith("assessmentstore_metrics_"):
                found[(sample.name, sample.labels.get("source", ""))] = sample.value
    return found


def outage_records(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno >= logging.WARNING]


@pytest.fixture
def broker_down(settings: Settings) -> Iterator[AssessmentStore]:
    store = AssessmentStore(
        settings.model_copy(
            update={"broker_url": dead_url("redis"), "broker_publish_timeout_seconds": 0.2}
        )
    )
    yield store
    store.close()


class CountingDispatcher:
    """The real dispatcher, counting the publishes tried."""

    def __init__(self, real: Dispatcher) -> None:
        self.real = real
        self.tried = 0

    def dispatch(self, items: Sequence[DispatchItem]) -> None:
        self.tried += 1
        self.real.dispatch(items)

    def close(self) -> None:
        self.real.close()


def test_creates_with_the_broker_down_log_one_line_not_a_traceback_each(
    broker_down: AssessmentStore, raw_conn: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    counting = CountingDispatcher(broker_down.runtime.dispatcher)
    broker_down.runtime.dispatcher = counting
    ids = [broker_down.create_assessment(request()) for _ in range(5)]
    # The first failure pauses publishing: the others do not wait on the broker.
    assert counting.tried == 1
    pending = raw_conn.execute(
        text("SELECT count(*) FROM assessment_states WHERE state = 'pending'")
    ).scalar_one()
    assert pending == len(ids) == 5, "the row is the promise"
    records = outage_records(caplog, "assessment_store.service")
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].getMessage().startswith("dispatch_failed: ")
    assert records[0].exc_info is None and "\n" not in records[0].getMessage()


def test_publishing_is_tried_again_once_the_pause_is_over(
    broker_down: AssessmentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bootstrap, "PUBLISH_PAUSE_SECONDS", 0.0)
    counting = CountingDispatcher(broker_down.runtime.dispatcher)
    broker_down.runtime.dispatcher = counting
    for _ in range(2):
        broker_down.create_assessment(request())
    assert counting.tried == 2


def test_metrics_with_the_broker_down_report_it_as_a_metric_and_log_once(
    broker_down: AssessmentStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with TestClient(create_app(broker_down, SECRET)) as client:
        first = samples(client)
        later = samples(client)
        samples(client)
    assert first[("assessmentstore_metrics_source_up", "broker")] == 0.0
    assert first[("assessmentstore_metrics_source_up", "database")] == 1.0
    errors = "assessmentstore_metrics_scrape_errors_total"
    assert later[(errors, "broker")] == first[(errors, "broker")] + 1
    assert later[(errors, "database")] == 0.0
    records = outage_records(caplog, "assessment_store.metrics")
    assert len(records) == 1 and records[0].exc_info is None


def test_metrics_with_the_database_down_report_it_as_a_metric(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    unreachable = settings.model_copy(update={"database_url": dead_url("postgresql+psycopg2")})
    store = AssessmentStore(unreachable)
    try:
        with TestClient(create_app(store, SECRET)) as client:
            for _ in range(3):
                found = samples(client)
                assert found[("assessmentstore_metrics_source_up", "database")] == 0.0
                assert found[("assessmentstore_metrics_source_up", "broker")] == 1.0
    finally:
        store.close()
    records = outage_records(caplog, "assessment_store.metrics")
    assert len(records) == 1 and records[0].exc_info is None
