"""subscribe(): events from every change, across connections, until unsubscribed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from assessment_store import AssessmentEventMessage, AssessmentStore, InvalidInputError
from tests.factories import processing, request


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_a_subscriber_receives_each_lifecycle_event_in_order(store: AssessmentStore) -> None:
    received: list[AssessmentEventMessage] = []
    types = [
        "assessment.created",
        "assessment.started",
        "assessment.progress",
        "assessment.completed",
    ]
    with store.subscribe(types, received.append, poll_interval_seconds=0.05):
        assessment_id = store.create_assessment(request())
        store.start_processing(assessment_id, "w1")
        store.update_progress(assessment_id, 50)
        store.complete_assessment(assessment_id, {"ok": 1})
        assert wait_until(lambda: len(received) == 4)
    assert [e.type for e in received] == types
    assert [e.version for e in received] == [1, 2, 3, 4]
    assert {e.assessment_id for e in received} == {assessment_id}


def test_a_subscriber_gets_only_the_types_it_asked_for(store: AssessmentStore) -> None:
    received: list[AssessmentEventMessage] = []
    with store.subscribe(["assessment.cancelled"], received.append, poll_interval_seconds=0.05):
        kept = store.create_assessment(request())
        gone = store.create_assessment(request())
        store.cancel_assessment(gone, "no")
        # A last cancellation after everything else: events arrive in order, so once it
        # is delivered, any unwanted event before it would have been delivered too.
        last = store.create_assessment(request())
        store.cancel_assessment(last, "sentinel")
        assert wait_until(lambda: len(received) >= 2)
    assert [(e.type, e.assessment_id) for e in received] == [
        ("assessment.cancelled", gone),
        ("assessment.cancelled", last),
    ]
    assert kept not in {e.assessment_id for e in received}


def test_events_of_a_large_burst_all_arrive(store: AssessmentStore) -> None:
    received: list[str] = []
    with store.subscribe(
        ["assessment.created"],
        lambda e: received.append(e.assessment_id),
        poll_interval_seconds=0.05,
    ):
        ids = store.batch_create_assessments([request() for _ in range(2500)])
        assert wait_until(lambda: len(received) == 2500, timeout=20)
    assert sorted(received) == sorted(ids)


def test_a_slow_or_failing_handler_does_not_block_another_subscriber(
    store: AssessmentStore,
) -> None:
    fast: list[str] = []
    release = threading.Event()

    def slow(event: AssessmentEventMessage) -> None:
        release.wait(5)
        raise RuntimeError("handler bug")

    with (
        store.subscribe(["assessment.created"], slow, poll_interval_seconds=0.05),
        store.subscribe(
            ["assessment.created"],
            lambda e: fast.append(e.assessment_id),
            poll_interval_seconds=0.05,
        ),
    ):
        assessment_id = store.create_assessment(request())
        assert wait_until(lambda: fast == [assessment_id])
        release.set()


def test_after_close_nothing_is_delivered_and_the_thread_ends(store: AssessmentStore) -> None:
    received: list[AssessmentEventMessage] = []
    subscription = store.subscribe(
        ["assessment.started"], received.append, poll_interval_seconds=0.05
    )
    assert store.notifier.watch_count == 1
    subscription.close()
    assert not subscription.active
    assert store.notifier.watch_count == 0, "unsubscribing leaves no watch behind"
    # A second, open subscription proves the event was published and delivered: the
    # closed one would have had it by then.
    witness: list[AssessmentEventMessage] = []
    with store.subscribe(["assessment.started"], witness.append, poll_interval_seconds=0.05):
        started = processing(store)
        assert wait_until(lambda: len(witness) == 1)
    assert witness[0].assessment_id == started.assessment_id
    assert received == []
    assert not any(t.name == "assessment-events" and t.is_alive() for t in threading.enumerate())


def test_unknown_event_types_are_refused_naming_the_field(store: AssessmentStore) -> None:
    with pytest.raises(InvalidInputError, match="eventTypes"):
        store.subscribe(["assessment.exploded"], print)
