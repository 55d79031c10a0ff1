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
    changes,
)
from assessment_store.execution import Outcome, run_attempt
from assessment_store.handlers.context import HandlerContext
from tests.chain import audit_chain_problems
from tests.factories import quiet_store, request
from tests.waiting import wait_until


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
    assert run_attempt(store.runtime, assessment_id, "w1") is Outcome.COMPLETED
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
    assert run_attempt(store.runtime, assessment_id, "w1") is Outcome.COMPLETED
    assert run_attempt(store.runtime, assessment_id, "w2") is Outcome.DUPLICATE
    assert run_attempt(store.runtime, "deleted-or-never-existed", "w2") is Outcome.DUPLICATE
    assert calls == [assessment_id]
    assert store.get_state(assessment_id).version == 3


def test_cancelling_a_running_assessment_stops_it_at_the_next_progress_report(
    store: AssessmentStore,
) -> None:
    running = threading.Event()
    cancelled = threading.Event()
    reached: list[int] = []

    def handler(ctx: HandlerContext) -> dict[str, Any]:
        ctx.report_progress(10)
        running.set()
        assert cancelled.wait(30), "the test never cancelled"
        ctx.report_progress(20)  # Then this report raises: the handler stops here
        reached.append(20)
        return {"finished": True}

    # Given a handler part-way through its attempt
    assessment_id = make(store, handler)
    outcome: list[Outcome] = []
    runner = threading.Thread(
        target=lambda: outcome.append(run_attempt(store.runtime, assessment_id, "w"))
    )
    runner.start()
    assert running.wait(30), "the handler never started"
    # When the assessment is cancelled
    store.cancel_assessment(assessment_id, "no longer needed")
    cancelled.set()
    runner.join(30)
    # Then its next progress report ends the attempt and its result is never recorded
    assert outcome == [Outcome.CANCELLED]
    assert reached == []
    got = store.get_state(assessment_id)
    assert got.state is AssessmentState.CANCELLED and got.result_data is None


def test_a_result_that_arrives_after_a_cancel_is_discarded(store: AssessmentStore) -> None:
    def handler(ctx: HandlerContext) -> dict[str, Any]:
        store.cancel_assessment(ctx.assessment_id, "raced")
        return {"late": True}

    assessment_id = make(store, handler)
    assert run_attempt(store.runtime, assessment_id, "w") is Outcome.CANCELLED
    assert store.get_state(assessment_id).result_data is None


def test_a_handler_exception_fails_the_attempt_and_schedules_a_retry(
    store: AssessmentStore,
) -> None:
    def handler(ctx: HandlerContext) -> dict[str, Any]:
        raise ConnectionRefusedError("port 5432 closed")

    assessment_id = make(store, handler)
    assert run_attempt(store.runtime, assessment_id, "w") is Outcome.FAILED
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
    assert run_attempt(store.runtime, assessment_id, "w") is Outcome.FAILED
    got = store.get_state(assessment_id)
    assert got.next_retry_at is None and message in (got.error_message or "")


def test_a_time_limit_fails_the_attempt_saying_so(store: AssessmentStore) -> None:
    def handler(ctx: HandlerContext) -> dict[str, Any]:
        raise FakeTimeoutError()

    assessment_id = make(store, handler, timeout=2.5)
    assert run_attempt(
        store.runtime, assessment_id, "w", timeout_exceptions=(FakeTimeoutError,)
    ) is (Outcome.TIMED_OUT)
    got = store.get_state(assessment_id)
    assert got.error_message == "timed out: the attempt exceeded its 2.5s time limit"
    assert got.next_retry_at is not None


def test_the_lease_is_renewed_while_the_handler_runs(settings: Any, raw_conn: Connection) -> None:
    from assessment_store import load_settings

    store = quiet_store(load_settings(database_url=settings.database_url, lease_seconds=0.6))
    expiries: list[Any] = []

    def handler(ctx: HandlerContext) -> dict[str, Any]:
        # Watch the lease until it has been pushed forward twice (bounded, not timed).
        deadline = time.monotonic() + 30
        while len(set(expiries)) < 3 and time.monotonic() < deadline:
            expiries.append(
                raw_conn.execute(
                    text(
                        "SELECT lease_expires_at FROM assessment_leases WHERE assessment_id = :id"
                    ),
                    {"id": ctx.assessment_id},
                ).scalar_one()
            )
            raw_conn.rollback()
            time.sleep(0.02)
        return {}

    try:
        assessment_id = make(store, handler)
        assert run_attempt(store.runtime, assessment_id, "w") is Outcome.COMPLETED
    finally:
        store.close()
    distinct = sorted(set(expiries))
    assert len(distinct) == 3, "the heartbeat renewed the lease while the handler ran"
    assert expiries == sorted(expiries), "each renewal pushed the expiry later"


def strike_after(target: Any) -> Any:
    """The first call of ``target`` runs (and commits), then the time limit strikes
    before it returns: the worst moment, when the caller cannot know its write went
    through. Once only, as Celery's soft limit."""
    struck: list[bool] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        result = target(*args, **kwargs)
        if not struck:
            struck.append(True)
            raise FakeTimeoutError()
        return result

    return call


def strike_before(target: Any) -> Any:
    """The time limit strikes just before the first call of ``target``, once."""
    struck: list[bool] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        if not struck:
            struck.append(True)
            raise FakeTimeoutError()
        return target(*args, **kwargs)

    return call


@pytest.mark.parametrize(
    ("moment", "wrap"),
    [
        ("claim", strike_before),
        ("claim", strike_after),
        ("report_progress", strike_before),
        ("report_progress", strike_after),
        ("complete", strike_before),
    ],
)
def test_a_time_limit_at_any_moment_fails_the_attempt_naming_the_limit(
    store: AssessmentStore,
    raw_conn: Connection,
    monkeypatch: pytest.MonkeyPatch,
    moment: str,
    wrap: Any,
) -> None:
    def handler(ctx: HandlerContext) -> dict[str, Any]:
        ctx.report_progress(50, "half way")
        return {"done": True}

    # Given an attempt whose time limit strikes while it claims, reports or completes
    assessment_id = make(store, handler, timeout=3)
    monkeypatch.setattr(changes, moment, wrap(getattr(changes, moment)))
    # When it runs
    outcome = run_attempt(store.runtime, assessment_id, "w", timeout_exceptions=(FakeTimeoutError,))
    # Then it ends failed, naming the limit, with a retry scheduled like any failure
    assert outcome is Outcome.TIMED_OUT
    got = store.get_state(assessment_id)
    assert got.state is AssessmentState.FAILED
    assert got.error_message == "timed out: the attempt exceeded its 3s time limit"
    assert got.next_retry_at is not None
    events = [e.event for e in store.get_audit_trail(assessment_id)]
    assert events[:2] == ["create", "start"] and events[-1] == "fail"
    assert events.count("start") == 1 and events.count("fail") == 1
    lease = raw_conn.execute(
        text("SELECT worker_id FROM assessment_leases WHERE assessment_id = :id"),
        {"id": assessment_id},
    ).scalar_one()
    assert lease is None, "the lease is released: rescue will never see it as lost"
    assert audit_chain_problems(raw_conn) == []


def test_a_time_limit_that_strikes_after_the_completion_committed_changes_nothing(
    store: AssessmentStore, raw_conn: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    assessment_id = make(store, lambda ctx: {"done": True}, timeout=3)
    monkeypatch.setattr(changes, "complete", strike_after(changes.complete))
    outcome = run_attempt(store.runtime, assessment_id, "w", timeout_exceptions=(FakeTimeoutError,))
    assert outcome is Outcome.SUPERSEDED
    assert store.get_state(assessment_id).state is AssessmentState.COMPLETED
    assert audit_chain_problems(raw_conn) == []


@pytest.mark.parametrize("moment", ["complete", "timeout"])
def test_the_lease_is_renewed_while_the_outcome_is_written(
    settings: Any, raw_conn: Connection, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    from assessment_store import load_settings

    # Given an attempt whose outcome (a completion, or a time limit's failure) is
    # written so slowly that the short lease would run out twice over meanwhile
    store = quiet_store(load_settings(database_url=settings.database_url, lease_seconds=0.6))
    renewed_while_writing: list[int] = []

    def expiry(assessment_id: str) -> Any:
        value = raw_conn.execute(
            text("SELECT lease_expires_at FROM assessment_leases WHERE assessment_id = :id"),
            {"id": assessment_id},
        ).scalar_one()
        raw_conn.rollback()
        return value

    def slowly(target: Any) -> Any:
        def call(runtime: Any, assessment_id: str, *args: Any, **kwargs: Any) -> Any:
            seen = {expiry(assessment_id)}

            def renewed_twice() -> bool:
                seen.add(expiry(assessment_id))
                return len(seen) >= 3

            # Raised through the attempt (outside its handler) when the lease stood still.
            wait_until(
                renewed_twice, timeout=10, message="the lease was left to run out during the write"
            )
            renewed_while_writing.append(len(seen) - 1)
            return target(runtime, assessment_id, *args, **kwargs)

        return call

    def handler(ctx: HandlerContext) -> dict[str, Any]:
        if moment == "timeout":
            raise FakeTimeoutError()
        return {"done": True}

    target = "complete" if moment == "complete" else "fail"
    monkeypatch.setattr(changes, target, slowly(getattr(changes, target)))
    try:
        assessment_id = make(store, handler, timeout=3)
        # When it runs
        outcome = run_attempt(
            store.runtime, assessment_id, "w", timeout_exceptions=(FakeTimeoutError,)
        )
    finally:
        store.close()
    # Then the heartbeat kept renewing the lease until the outcome was written
    assert renewed_while_writing == [2], "the lease was left to run out during the write"
    assert outcome is (Outcome.COMPLETED if moment == "complete" else Outcome.TIMED_OUT)
    assert expiry(assessment_id) is None, "released once the outcome is written"
    assert audit_chain_problems(raw_conn) == []
