"""Races on one row: one winner per version, the rest refused, no audit gaps."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Connection, text

from assessment_store import (
    AssessmentState,
    AssessmentStore,
    InvalidStateTransitionError,
    VersionConflictError,
)
from tests.chain import audit_chain_problems
from tests.factories import processing, request

THREADS = 8


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call at once (released by one barrier); results or exceptions, in order."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = calls[index]()
        except Exception as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


@pytest.fixture
def racing_store(store: AssessmentStore) -> AssessmentStore:
    assert store.settings.database_pool_size + store.settings.database_max_overflow >= THREADS
    return store


def test_eight_writers_with_the_same_version_give_one_winner_and_seven_conflicts(
    racing_store: AssessmentStore, raw_conn: Connection
) -> None:
    started = processing(racing_store)
    outcomes = race(
        [
            partial(
                racing_store.update_progress,
                started.assessment_id,
                p,
                expected_version=started.version,
            )
            for p in range(10, 10 + THREADS)
        ]
    )
    winners = [o for o in outcomes if not isinstance(o, Exception)]
    losers = [o for o in outcomes if isinstance(o, Exception)]
    assert len(winners) == 1
    assert len(losers) == THREADS - 1
    assert all(isinstance(e, VersionConflictError) for e in losers)
    final = racing_store.get_state(started.assessment_id)
    assert final.version == started.version + 1 and final.progress == winners[0].progress
    assert audit_chain_problems(raw_conn) == []


def test_eight_writers_without_a_version_each_win_a_distinct_version_or_conflict(
    racing_store: AssessmentStore, raw_conn: Connection
) -> None:
    started = processing(racing_store)
    for _ in range(5):
        outcomes = race(
            [
                partial(racing_store.update_progress, started.assessment_id, p)
                for p in range(THREADS)
            ]
        )
        assert all(
            not isinstance(o, Exception) or isinstance(o, VersionConflictError) for o in outcomes
        )
        versions = [o.version for o in outcomes if not isinstance(o, Exception)]
        assert len(versions) == len(set(versions)) >= 1
    trail = racing_store.get_audit_trail(started.assessment_id)
    assert [e.version_to for e in trail] == list(
        range(1, racing_store.get_state(started.assessment_id).version + 1)
    )
    assert audit_chain_problems(raw_conn) == []


def test_eight_workers_claiming_one_pending_assessment_give_exactly_one_claim(
    racing_store: AssessmentStore, raw_conn: Connection
) -> None:
    for _ in range(5):
        assessment_id = racing_store.create_assessment(request())
        outcomes = race(
            [partial(racing_store.start_processing, assessment_id, f"w{w}") for w in range(THREADS)]
        )
        claims = [o for o in outcomes if not isinstance(o, Exception)]
        assert len(claims) == 1
        assert all(
            isinstance(o, InvalidStateTransitionError | VersionConflictError)
            for o in outcomes
            if isinstance(o, Exception)
        )
        assert racing_store.get_state(assessment_id).worker_id == claims[0].worker_id
        starts = raw_conn.execute(
            text(
                "SELECT count(*) FROM assessment_state_audit "
                "WHERE assessment_id = :id AND event = 'start'"
            ),
            {"id": assessment_id},
        ).scalar_one()
        assert starts == 1
    assert audit_chain_problems(raw_conn) == []


def test_cancel_racing_complete_ends_in_exactly_one_terminal_state(
    racing_store: AssessmentStore, raw_conn: Connection
) -> None:
    finals: set[AssessmentState] = set()
    for _ in range(20):
        started = processing(racing_store)
        outcomes = race(
            [
                partial(racing_store.cancel_assessment, started.assessment_id, "race"),
                partial(racing_store.complete_assessment, started.assessment_id, {"done": 1}),
            ]
        )
        succeeded = [o for o in outcomes if not isinstance(o, Exception)]
        assert len(succeeded) == 1
        final = racing_store.get_state(started.assessment_id)
        assert final.state is succeeded[0].state
        assert (final.result_data is not None) == (final.state is AssessmentState.COMPLETED)
        terminal_rows = raw_conn.execute(
            text(
                "SELECT count(*) FROM assessment_state_audit WHERE assessment_id = :id "
                "AND new_state IN ('completed', 'cancelled')"
            ),
            {"id": started.assessment_id},
        ).scalar_one()
        assert terminal_rows == 1
        finals.add(final.state)
    assert finals <= {AssessmentState.COMPLETED, AssessmentState.CANCELLED}
    assert audit_chain_problems(raw_conn) == []


def test_two_batch_retries_at_once_retry_each_failure_once(
    racing_store: AssessmentStore, raw_conn: Connection
) -> None:
    ids = []
    for _ in range(30):
        started = processing(racing_store)
        racing_store.fail_assessment(started.assessment_id, "x")
        ids.append(started.assessment_id)
    outcomes = race([racing_store.batch_retry_failed_assessments] * 2)
    retried = [i for o in outcomes for i in o]
    assert sorted(retried) == sorted(ids)
    counts = raw_conn.execute(
        text("SELECT retry_count, count(*) FROM assessment_states GROUP BY retry_count")
    ).all()
    assert [tuple(c) for c in counts] == [(1, 30)]
    assert audit_chain_problems(raw_conn) == []


def test_a_cancel_without_a_version_is_never_refused_by_a_concurrent_progress_report(
    racing_store: AssessmentStore, raw_conn: Connection
) -> None:
    for _ in range(15):
        started = processing(racing_store)
        outcomes = race(
            [
                partial(racing_store.update_progress, started.assessment_id, 10),
                partial(racing_store.update_progress, started.assessment_id, 20),
                partial(racing_store.cancel_assessment, started.assessment_id, "stop"),
            ]
        )
        assert not isinstance(outcomes[2], Exception), outcomes[2]
        assert racing_store.get_state(started.assessment_id).state is AssessmentState.CANCELLED
    assert audit_chain_problems(raw_conn) == []
