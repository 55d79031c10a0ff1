"""One attempt, in-process: claim, progress, cancel, timeout, failures, duplicates."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import Connection, text

from assessment_store import (
    AssessmentState,
    AssessmentStore,
    PermanentAssessmentError,
)
from assessment_store.execution import HandlerContext, Outcome, run_attempt
from tests.chain import audit_chain_problems
from tests.factories import request


class FakeTimeoutError(Exception):
    """Stands in for Celery's SoftTimeLimitExceeded."""


def make(store: AssessmentStore, handler: Any, **fields: Any) -> str:
    store.handlers.register("probe", handler)
    return store.create_assessment(request(assessment_type="probe", **fields))


def test_a_successful_handler_completes_the_assessment_with_its_result(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    def handler(ctx: HandlerContext) -> dict[str, Any]:
        ctx.report_progress(30, "a third")
        ctx.report_progress(60)
        return {"attempt": ctx.attempt, "server": ctx.request.server_name}

    assessment_id = make(store, handler, server_name="db1")
    assert run_attempt(store, assessment_id, "w1") is Outcome.COMPLETED
    got = store.get_state(assessment_id)
    assert got.state is AssessmentState.COMPLETED
    assert got.result_data == {"attempt": 1, "server": "db1"}
    assert [e.event for e in store.get_audit_trail(assessment_id)] == [
        "create",
        "start",
        "progress",
        "progress",
        "complete",
    ]
    assert audit_chain_problems(raw_conn) == []


def test_a_second_delivery_of_the_same_assessment_does_nothing(store: AssessmentStore) -> None:
    calls: list[str] = []

    def handler(ctx: HandlerContext) -> dict[str, Any]:
        calls.append(ctx.assessment_id)
        return {}

    assessment_id = make(store, handler)
    assert run_attempt(store, assessment_id, "w1") is Outcome.COMPLETED
    assert run_attempt(store, assessment_id, "w2") is Outcome.DUPLICATE
    assert run_attempt(store, "deleted-or-never-existed", "w2") is Outcome.DUPLICATE
    assert calls == [assessment_id]
    assert store.get_state(assessment_id).version == 3


def test_cancelling_a_running_assessment_stops_it_at_the_next_progress_report(
    store: AssessmentStore,
) -> None:
    started = threading.Event()
    reached: list[int] = []

    def handler(ctx: HandlerContext) -> dict[str, Any]:
        started.set()
        for percent in range(10, 100, 10):
            time.sleep(0.05)
            ctx.report_progress(percent)
            reached.append(percent)
        return {"finished": True}

    assessment_id = make(store, handler)
    outcome: list[Outcome] = []
    runner = threading.Thread(target=lambda: outcome.append(run_attempt(store, assessment_id, "w")))
    runner.start()
    assert started.wait(5)
    store.cancel_assessment(assessment_id, "no longer needed")
    runner.join(10)
    assert outcome == [Outcome.CANCELLED]
    got = store.get_state(assessment_id)
    assert got.state is AssessmentState.CANCELLED and got.result_data is None
    assert len(reached) < 9


def test_a_result_that_arrives_after_a_cancel_is_discarded(store: AssessmentStore) -> None:
    def handler(ctx: HandlerContext) -> dict[str, Any]:
        ctx._store.cancel_assessment(ctx.assessment_id, "raced")
        return {"late": True}

    assessment_id = make(store, handler)
    assert run_attempt(store, assessment_id, "w") is Outcome.CANCELLED
    assert store.get_state(assessment_id).result_data is None


def test_a_handler_exception_fails_the_attempt_and_schedules_a_retry(
    store: AssessmentStore,
) -> None:
    def handler(ctx: HandlerContext) -> dict[str, Any]:
        raise ConnectionRefusedError("port 5432 closed")

    assessment_id = make(store, handler)
    assert run_attempt(store, assessment_id, "w") is Outcome.FAILED
    got = store.get_state(assessment_id)
    assert got.state is AssessmentState.FAILED
    assert got.error_message == "ConnectionRefusedError: port 5432 closed"
    assert got.next_retry_at is not None


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (
            lambda ctx: (_ for _ in ()).throw(PermanentAssessmentError("bad config")),
            "PermanentAssessmentError: bad config",
        ),
        (lambda ctx: ["not", "a", "dict"], "returned list, not a dict"),
    ],
)
def test_a_permanent_failure_is_not_retried(
    store: AssessmentStore, handler: Any, message: str
) -> None:
    assessment_id = make(store, handler)
    assert run_attempt(store, assessment_id, "w") is Outcome.FAILED
    got = store.get_state(assessment_id)
    assert got.next_retry_at is None and message in (got.error_message or "")


def test_a_time_limit_fails_the_attempt_saying_so(store: AssessmentStore) -> None:
    def handler(ctx: HandlerContext) -> dict[str, Any]:
        raise FakeTimeoutError()

    assessment_id = make(store, handler, timeout=2.5)
    assert run_attempt(store, assessment_id, "w", timeout_exceptions=(FakeTimeoutError,)) is (
        Outcome.FAILED
    )
    got = store.get_state(assessment_id)
    assert got.error_message == "timed out: the attempt exceeded its 2.5s time limit"
    assert got.next_retry_at is not None


def test_the_lease_is_renewed_while_the_handler_runs(settings: Any, raw_conn: Connection) -> None:
    from assessment_store import load_settings

    store = AssessmentStore(load_settings(database_url=settings.database_url, lease_seconds=0.6))
    expiries: list[object] = []

    def handler(ctx: HandlerContext) -> dict[str, Any]:
        for _ in range(3):
            time.sleep(0.45)
            expiries.append(
                raw_conn.execute(
                    text(
                        "SELECT lease_expires_at FROM assessment_leases WHERE assessment_id = :id"
                    ),
                    {"id": ctx.assessment_id},
                ).scalar_one()
            )
            raw_conn.rollback()
        return {}

    try:
        assessment_id = make(store, handler)
        assert run_attempt(store, assessment_id, "w") is Outcome.COMPLETED
    finally:
        store.close()
    assert len(set(expiries)) == 3, "each look saw a renewed lease"
