"""The optional Redis read cache: hits, write-through, staleness bounds, Redis down."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis
from sqlalchemy import Connection, text

from assessment_store import (
    AssessmentNotFoundError,
    AssessmentState,
    AssessmentStore,
    load_settings,
)
from assessment_store.cache import KEY_PREFIX, StateCache
from assessment_store.config import Settings
from tests.factories import processing, quiet_store, request

TTL_SECONDS = 0.5


@pytest.fixture
def cached_store(settings: Settings) -> Iterator[AssessmentStore]:
    store = quiet_store(
        load_settings(
            database_url=settings.database_url,
            redis_url=settings.redis_url,
            cache_enabled=True,
            cache_ttl_seconds=TTL_SECONDS,
        )
    )
    yield store
    client = redis.Redis.from_url(settings.redis_url)
    for key in client.scan_iter(KEY_PREFIX + "*"):
        client.delete(key)
    client.close()
    store.close()


def test_a_completed_assessment_is_served_from_the_cache(
    cached_store: AssessmentStore, raw_conn: Connection
) -> None:
    done = processing(cached_store)
    cached_store.complete_assessment(done.assessment_id, {"ok": 1})
    with raw_conn.begin():  # behind the store's back: only the cache can answer now
        raw_conn.execute(
            text("DELETE FROM assessment_states WHERE assessment_id = :id"),
            {"id": done.assessment_id},
        )
    got = cached_store.get_state(done.assessment_id)
    assert got.state is AssessmentState.COMPLETED and got.result_data == {"ok": 1}


def test_an_owner_check_applies_to_cached_entries(cached_store: AssessmentStore) -> None:
    assessment_id = cached_store.create_assessment(request(), created_by="alice")
    cached_store.get_state(assessment_id)
    with pytest.raises(AssessmentNotFoundError):
        cached_store.get_state(assessment_id, owner="bob")


def test_a_change_made_around_the_cache_is_seen_within_the_ttl(
    cached_store: AssessmentStore, raw_conn: Connection
) -> None:
    assessment_id = cached_store.create_assessment(request())
    assert cached_store.get_state(assessment_id).priority == 5
    with raw_conn.begin():
        raw_conn.execute(text("UPDATE assessment_states SET priority = 9, version = version + 1"))
    deadline = time.monotonic() + TTL_SECONDS * 4
    while cached_store.get_state(assessment_id).priority != 9:
        assert time.monotonic() < deadline, "a non-terminal entry outlived its TTL"
        time.sleep(0.05)


def test_an_older_version_never_overwrites_a_newer_one(
    cached_store: AssessmentStore, settings: Settings
) -> None:
    started = processing(cached_store)
    newer = cached_store.update_progress(started.assessment_id, 50)
    cache = StateCache(settings.redis_url, 60, 30)
    cache.put(started)  # a slow writer arriving late with version 2
    got = cache.get(started.assessment_id)
    cache.close()
    assert got is not None and got.version == newer.version


def test_readers_never_see_a_version_older_than_the_ttl_allows(
    cached_store: AssessmentStore,
) -> None:
    started = processing(cached_store)
    commits: list[tuple[float, int]] = []
    reads: list[tuple[float, int]] = []
    stop = threading.Event()

    def writer() -> None:
        for percent in range(1, 60):
            done = cached_store.update_progress(started.assessment_id, percent)
            commits.append((time.monotonic(), done.version))

    def reader() -> None:
        while not stop.is_set():
            began = time.monotonic()
            reads.append((began, cached_store.get_state(started.assessment_id).version))

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers:
        thread.start()
    writer()
    stop.set()
    for thread in readers:
        thread.join()
    assert len(reads) > 50
    for began, version in reads:
        settled = [v for at, v in commits if at < began - TTL_SECONDS]
        assert version >= max(settled, default=0), (began, version)
    lag = [
        max((v for at, v in commits if at < began), default=0) - version for began, version in reads
    ]
    assert sum(1 for behind in lag if behind > 0) < len(reads) / 2, "write-through keeps up"


def test_with_redis_down_the_cache_steps_aside(settings: Settings) -> None:
    store = quiet_store(
        load_settings(
            database_url=settings.database_url,
            redis_url="redis://127.0.0.1:1/0",
            cache_enabled=True,
        )
    )
    try:
        assessment_id = store.create_assessment(request())
        assert store.get_state(assessment_id).state is AssessmentState.PENDING
    finally:
        store.close()


def test_a_deleted_assessment_leaves_the_cache_and_a_reused_id_is_fresh(
    cached_store: AssessmentStore, raw_conn: Connection
) -> None:
    done = processing(cached_store, id="reused-1", server_name="first")
    cached_store.complete_assessment(done.assessment_id, {"run": 1})
    assert cached_store.get_state("reused-1").state is AssessmentState.COMPLETED
    with raw_conn.begin():
        raw_conn.execute(
            text("UPDATE assessment_states SET completed_at = completed_at - interval '40 days'")
        )
    assert cached_store.cleanup_old_assessments(30) == 1
    with pytest.raises(AssessmentNotFoundError):
        cached_store.get_state("reused-1")
    cached_store.create_assessment(request(id="reused-1", server_name="second"))
    again = cached_store.get_state("reused-1")
    assert (again.state, again.version, again.server_name) == (AssessmentState.PENDING, 1, "second")
