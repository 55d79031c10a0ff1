"""Push-based waiting: a committed change wakes its waiters through LISTEN/NOTIFY."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Connection, text

from assessment_store import AssessmentState, AssessmentStore
from assessment_store.notify import ANY_ASSESSMENT, StateNotifier
from tests.factories import processing, request
from tests.waiting import wait_until


@pytest.fixture
def no_rechecks(store: AssessmentStore) -> None:
    """Waiters never re-check on their own: only a notification can wake them."""
    store.wait_recheck_seconds = 120.0


def complete_later(store: AssessmentStore, assessment_id: str, delay: float) -> threading.Thread:
    def finish() -> None:
        time.sleep(delay)
        store.complete_assessment(assessment_id, {"ok": True})

    thread = threading.Thread(target=finish)
    thread.start()
    return thread


@pytest.mark.usefixtures("no_rechecks")
def test_a_waiter_is_woken_by_the_completion_not_by_polling(store: AssessmentStore) -> None:
    started = processing(store)
    finisher = complete_later(store, started.assessment_id, 0.5)
    got = store.wait_for_completion(started.assessment_id, timeout=30)
    finisher.join()
    assert got.state is AssessmentState.COMPLETED


@pytest.mark.usefixtures("no_rechecks")
def test_many_waiters_share_one_listen_connection(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    ids = [processing(store).assessment_id for _ in range(50)]
    results: dict[str, AssessmentState] = {}

    def wait(assessment_id: str) -> None:
        results[assessment_id] = store.wait_for_completion(assessment_id, timeout=60).state

    waiters = [threading.Thread(target=wait, args=(i,)) for i in ids]
    for waiter in waiters:
        waiter.start()
    deadline = time.monotonic() + 10
    while store.notifier.watch_count < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.notifier.watch_count == 50, "every waiter is watching before completion"

    def listeners() -> int:
        count = raw_conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = 'assessment-store-listen' "
                "AND datname = current_database()"
            )
        ).scalar_one()
        raw_conn.rollback()  # a fresh snapshot of pg_stat_activity each time
        return int(count)

    # The listener connects in its own thread: on a loaded machine, after the watches.
    wait_until(lambda: listeners() >= 1, timeout=20, message="the listener never connected")
    assert listeners() == 1
    for assessment_id in ids:
        store.complete_assessment(assessment_id, {})
    for waiter in waiters:
        waiter.join(30)
    assert results == dict.fromkeys(ids, AssessmentState.COMPLETED)
    assert store.notifier.watch_count == 0, "finished waiters leave no watch behind"


def test_the_listener_reconnects_after_losing_its_connection(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    notifier = StateNotifier(store.settings.database_url)
    heard: list[str] = []
    woken = threading.Event()

    def hear(assessment_id: str, state: str) -> None:
        heard.append(assessment_id)
        woken.set()

    notifier.watch(ANY_ASSESSMENT, hear)
    assert notifier.connected.wait(10)
    assert woken.wait(5), "connecting wakes every watcher once (changes may have been missed)"
    woken.clear()
    with raw_conn.begin():
        raw_conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'assessment-store-listen' "
                "AND datname = current_database()"
            )
        )
    assert woken.wait(10), "a reconnect wakes every watcher to re-check"
    woken.clear()
    assert notifier.connected.wait(10)
    assessment_id = store.create_assessment(request())
    assert woken.wait(10)
    notifier.close()
    assert "*" in heard and assessment_id
