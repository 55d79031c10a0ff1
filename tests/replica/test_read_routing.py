"""Where each read goes, proved on a real streaming replica: with replay paused the
replica lacks what the primary just committed, so what a read sees says which server
answered it. Lists, searches and stats read the replica; get_state, waiting and a
caller's reads that follow its own write read the primary; after catch-up everyone
sees everything; a replica that is down is replaced by the primary, quickly."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event

from assessment_store import AssessmentState, AssessmentStore
from assessment_store.config import Settings, load_settings
from assessment_store.consistency import ReadRouter, acting_as
from assessment_store.http.app import create_app
from assessment_store.http.auth import Role
from tests.factories import quiet_store, request
from tests.http.conftest import SECRET, bearer
from tests.replica.servers import StreamingPair

MakeStore = Callable[..., AssessmentStore]


def ids(page: Any) -> set[str]:
    return {a.assessment_id for a in page.items}


@pytest.fixture
def make_store(pair: StreamingPair, base_settings: Settings) -> Iterator[MakeStore]:
    """Stores on the pair (primary, READ_DATABASE_URL the replica), closed at the end;
    keyword arguments are settings."""
    made: list[AssessmentStore] = []

    def make(**overrides: Any) -> AssessmentStore:
        settings = load_settings(
            database_url=pair.primary_url,
            read_database_url=pair.replica_url,
            redis_url=base_settings.redis_url,
            **overrides,
        )
        made.append(quiet_store(settings))
        return made[-1]

    yield make
    for store in made:
        store.close()


def statements_on(engine: Engine) -> list[str]:
    """Every statement ``engine`` runs from now on."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    return seen


def lists(statements: list[str]) -> list[str]:
    return [s for s in statements if "ORDER BY created_at DESC" in s]


def test_with_replay_paused_other_callers_read_the_replica_and_the_writer_the_primary(
    paused: StreamingPair, make_store: MakeStore
) -> None:
    writer, other = make_store(), make_store()
    total_before = other.get_assessment_stats().total
    pending_before = other.get_system_gauges().counts_by_state[AssessmentState.PENDING]

    new_id = writer.create_assessment(request())

    # Another caller's list, stats and gauges: the replica, which lacks the new row.
    assert new_id not in ids(other.list_assessments())
    assert other.get_assessment_stats().total == total_before
    assert other.get_system_gauges().counts_by_state[AssessmentState.PENDING] == pending_before
    # get_state: the primary, whoever asks.
    assert other.get_state(new_id).state is AssessmentState.PENDING
    # The writer's own reads follow its write: the primary.
    assert new_id in ids(writer.list_assessments())
    assert writer.get_assessment_stats().total == total_before + 1

    # Waiting reads the primary: it sees the completion the replica has not replayed.
    writer.start_processing(new_id, "worker-1")
    writer.complete_assessment(new_id, {"ok": True})
    assert other.wait_for_completion(new_id, timeout=5).state is AssessmentState.COMPLETED
    assert new_id not in ids(other.list_assessments())

    paused.resume_replay()
    paused.wait_until_replayed()
    assert new_id in ids(other.list_assessments())
    assert other.get_assessment_stats().total == total_before + 1


def test_search_is_routed_like_the_list(paused: StreamingPair, make_store: MakeStore) -> None:
    writer, other = make_store(), make_store()
    new_id = writer.create_assessment(request(server_name="replica-search.example:443"))

    assert ids(other.search_assessments("replica-search")) == set()
    assert ids(writer.search_assessments("replica-search")) == {new_id}

    paused.resume_replay()
    paused.wait_until_replayed()
    assert ids(other.search_assessments("replica-search")) == {new_id}


def test_one_store_serves_several_callers_with_acting_as(
    paused: StreamingPair, make_store: MakeStore
) -> None:
    store = make_store()
    with acting_as("alice"):
        new_id = store.create_assessment(request())
        assert new_id in ids(store.list_assessments())
    with acting_as("bob"):
        assert new_id not in ids(store.list_assessments())
    # Outside any acting_as the caller is the store itself, which has not written.
    assert new_id not in ids(store.list_assessments())


def test_which_engine_answers_behind_and_after_catch_up(
    pair: StreamingPair, make_store: MakeStore
) -> None:
    writer = make_store()
    on_replica = statements_on(writer.engines.replica)
    on_primary = statements_on(writer.engines.reader)

    pair.pause_replay()
    try:
        writer.create_assessment(request())
        writer.list_assessments()
        # Behind: the replica is only asked how far it has replayed; the primary lists.
        assert [s for s in on_replica if "pg_last_wal_replay_lsn" in s]
        assert lists(on_replica) == []
        assert len(lists(on_primary)) == 1
    finally:
        pair.resume_replay()
    pair.wait_until_replayed()

    on_replica.clear()
    on_primary.clear()
    writer.list_assessments()
    # Caught up: the replica answers, after checking it has replayed the write.
    assert len(lists(on_replica)) == 1
    assert lists(on_primary) == []
    assert not [s for s in on_primary if "pg_current_wal" in s]  # the position was kept


class ManualClock:
    """The router's clock, moved by the test: a window or a pause passes at once."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_read_your_writes_is_bounded_by_its_window(
    paused: StreamingPair, make_store: MakeStore
) -> None:
    writer = make_store(read_your_writes_seconds=1.0)
    clock = ManualClock()
    writer.runtime.reads = ReadRouter(writer.engines, 1.0, clock=clock)
    new_id = writer.create_assessment(request())
    assert new_id in ids(writer.list_assessments())
    clock.advance(1.1)
    # The window has passed and the replica is still paused: the replica answers.
    assert new_id not in ids(writer.list_assessments())
    # A new write opens a new window.
    writer.cancel_assessment(new_id)
    assert new_id in ids(writer.list_assessments())


def test_a_window_of_zero_turns_read_your_writes_off(
    paused: StreamingPair, make_store: MakeStore
) -> None:
    writer = make_store(read_your_writes_seconds=0)
    new_id = writer.create_assessment(request())
    assert new_id not in ids(writer.list_assessments())
    assert writer.runtime.reads.tracked_callers() == 0


def test_http_read_your_writes_is_per_token_subject(
    paused: StreamingPair, make_store: MakeStore
) -> None:
    alice, admin = bearer("alice", Role.PRODUCER), bearer("carol", Role.ADMIN)
    alice_again = bearer("alice", Role.PRODUCER, ttl=timedelta(minutes=5))  # another token
    app = create_app(make_store(), SECRET, max_body_bytes=64 * 1024)
    with TestClient(app, raise_server_exceptions=False) as client:
        total_before = client.get("/v1/stats", headers=admin).json()["total"]
        created = client.post(
            "/v1/assessments",
            json={"assessmentType": "health", "serverName": "db1:5432"},
            headers=alice,
        )
        assert created.status_code == 201, created.text
        new_id = created.json()["assessmentId"]

        def listed(headers: dict[str, str]) -> set[str]:
            page = client.get("/v1/assessments", headers=headers)
            assert page.status_code == 200, page.text
            return {item["assessmentId"] for item in page.json()["items"]}

        assert new_id in listed(alice)
        assert new_id in listed(alice_again)
        assert new_id not in listed(admin)
        assert client.get("/v1/stats", headers=admin).json()["total"] == total_before
        assert client.get(f"/v1/assessments/{new_id}", headers=admin).status_code == 200

        paused.resume_replay()
        paused.wait_until_replayed()
        assert new_id in listed(admin)


def test_with_the_replica_down_the_primary_answers_quickly_then_the_replica_again(
    pair: StreamingPair, make_store: MakeStore, caplog: pytest.LogCaptureFixture
) -> None:
    writer, other = make_store(), make_store()
    clock = ManualClock()
    other.runtime.reads = ReadRouter(
        other.engines, other.settings.read_your_writes_seconds, clock=clock
    )
    other.runtime.reads.replica_retry_seconds = 0.3
    other.list_assessments()  # a pooled replica connection, which will be dead
    pair.pause_replay()
    try:
        new_id = writer.create_assessment(request())
        assert new_id not in ids(other.list_assessments())
        pair.replica.stop()
        with caplog.at_level(logging.WARNING, logger="assessment_store.db"):
            # Seen: the primary answered (the replica never replayed the create).
            assert new_id in ids(other.list_assessments())
            assert other.get_assessment_stats().total >= 1
        assert [r for r in caplog.records if "replica_unavailable" in r.getMessage()]
        on_replica = statements_on(other.engines.replica)
        pair.replica.start()  # replay is not paused after a restart
        pair.wait_until_replayed()
        clock.advance(0.35)  # past the retry pause: the replica is tried again
        assert new_id in ids(other.list_assessments())
        assert len(lists(on_replica)) == 1
    finally:
        if not (pair.replica.data / "postmaster.pid").exists():
            pair.replica.start()
        pair.resume_replay()
        pair.wait_until_replayed()
