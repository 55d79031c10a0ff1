"""Reading: filters, keyset pagination that neither skips nor repeats, stats, waiting."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from assessment_store import (
    AssessmentFilters,
    AssessmentNotFoundError,
    AssessmentState,
    AssessmentStore,
    AssessmentTimeoutError,
)
from assessment_store.errors import ForbiddenError, InvalidCursorError
from assessment_store.http.errors import STATUS_OF_CODE
from tests.factories import failed, processing, request


def test_walking_every_page_returns_each_assessment_exactly_once_newest_first(
    store: AssessmentStore,
) -> None:
    ids = store.batch_create_assessments([request(server_name=f"h{i}") for i in range(57)])
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.list_assessments(AssessmentFilters(limit=10, cursor=cursor))
        pages += 1
        seen.extend(a.assessment_id for a in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 6
    assert sorted(seen) == sorted(ids) and len(seen) == 57
    keys = [(a.created_at, a.assessment_id) for a in [store.get_state(i) for i in seen]]
    assert keys == sorted(keys, reverse=True)


def test_a_page_stays_stable_while_new_assessments_arrive(store: AssessmentStore) -> None:
    first_ids = store.batch_create_assessments([request() for _ in range(6)])
    page = store.list_assessments(AssessmentFilters(limit=3))
    store.batch_create_assessments([request() for _ in range(4)])
    rest = store.list_assessments(AssessmentFilters(limit=10, cursor=page.next_cursor))
    assert sorted(a.assessment_id for a in [*page.items, *rest.items]) == sorted(first_ids)


def test_filters_narrow_by_state_type_server_source_owner_and_time(
    store: AssessmentStore,
) -> None:
    a = store.create_assessment(request(assessment_type="security", server_name="s1"))
    b = store.create_assessment(request(source="compliance", server_name="s2"), created_by="bob")
    c = processing(store, server_name="s3").assessment_id

    def ids(**filters: object) -> set[str]:
        page = store.list_assessments(AssessmentFilters.model_validate(filters))
        return {x.assessment_id for x in page.items}

    assert ids(states=[AssessmentState.PROCESSING]) == {c}
    assert ids(states=[AssessmentState.PENDING]) == {a, b}
    assert ids(assessment_type="security") == {a}
    assert ids(server_name="s2") == {b}
    assert ids(source="compliance") == {b}
    assert ids(created_by="bob") == {b}
    assert ids(created_after=datetime.now(UTC) + timedelta(minutes=1)) == set()
    assert ids(created_before=datetime.now(UTC) + timedelta(minutes=1)) == {a, b, c}


def test_an_owner_sees_only_their_own_assessments(store: AssessmentStore) -> None:
    mine = store.create_assessment(request(), created_by="alice")
    store.create_assessment(request(), created_by="bob")
    page = store.list_assessments(AssessmentFilters(), owner="alice")
    assert [x.assessment_id for x in page.items] == [mine]
    with pytest.raises(ForbiddenError, match="createdBy"):
        store.list_assessments(AssessmentFilters(created_by="bob"), owner="alice")
    assert store.get_state(mine, owner="alice").assessment_id == mine
    with pytest.raises(AssessmentNotFoundError, match="not found"):
        store.get_state(mine, owner="bob")


def test_a_forged_cursor_is_refused(store: AssessmentStore) -> None:
    with pytest.raises(InvalidCursorError, match="cursor"):
        store.list_assessments(AssessmentFilters(cursor="definitely-not-ours"))


def test_stats_count_states_rates_and_dead_letters(store: AssessmentStore) -> None:
    store.create_assessment(request())
    for _ in range(3):
        done = processing(store)
        store.complete_assessment(done.assessment_id, {})
    failed(store)
    dead = processing(store)
    store.fail_assessment(dead.assessment_id, "fatal", permanent=True)
    stats = store.get_assessment_stats(window_seconds=60)
    assert stats.counts_by_state == {
        AssessmentState.PENDING: 1,
        AssessmentState.PROCESSING: 0,
        AssessmentState.COMPLETED: 3,
        AssessmentState.FAILED: 2,
        AssessmentState.CANCELLED: 0,
    }
    assert (stats.total, stats.active, stats.dead_letters) == (6, 1, 1)
    assert stats.throughput_per_minute == pytest.approx(3.0)
    assert stats.error_rate == pytest.approx(2 / 5)
    assert stats.average_processing_seconds is not None
    assert 0 <= stats.average_processing_seconds < 5


def test_stats_of_an_owner_count_only_their_assessments(store: AssessmentStore) -> None:
    store.create_assessment(request(), created_by="alice")
    store.create_assessment(request(), created_by="bob")
    assert store.get_assessment_stats(owner="alice").total == 1


def test_wait_returns_once_another_thread_completes_the_assessment(
    store: AssessmentStore,
) -> None:
    started = processing(store)

    def finish_later() -> None:
        time.sleep(0.3)
        store.complete_assessment(started.assessment_id, {"ok": True})

    worker = threading.Thread(target=finish_later)
    worker.start()
    got = store.wait_for_completion(started.assessment_id, timeout=10)
    worker.join()
    assert got.state is AssessmentState.COMPLETED and got.result_data == {"ok": True}


def test_wait_times_out_naming_the_current_state(store: AssessmentStore) -> None:
    started = processing(store)
    began = time.monotonic()
    with pytest.raises(AssessmentTimeoutError, match="processing") as caught:
        store.wait_for_completion(started.assessment_id, timeout=0.3)
    assert time.monotonic() - began >= 0.3
    assert caught.value.code == "ASSESSMENT_TIMEOUT"
    assert STATUS_OF_CODE[caught.value.code] == 408


def test_wait_keeps_waiting_through_a_failure_that_will_be_retried(
    store: AssessmentStore,
) -> None:
    got = failed(store)
    with pytest.raises(AssessmentTimeoutError, match="failed"):
        store.wait_for_completion(got.assessment_id, timeout=0.2)
    with store.engines.primary.begin() as conn:
        conn.execute(text("UPDATE assessment_states SET next_retry_at = NULL"))
    assert store.wait_for_completion(got.assessment_id, timeout=1).state is AssessmentState.FAILED
