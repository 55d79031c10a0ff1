"""Read routing at its edges, on the shared PostgreSQL: no replica configured (no
extra statement, nothing tracked) and a replica that never answers (one connect
timeout, then the primary without waiting)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from assessment_store import AssessmentStore
from assessment_store.config import Settings, load_settings
from tests.factories import quiet_store, request


def test_without_a_replica_reads_and_writes_cost_no_extra_statement(
    store: AssessmentStore,
) -> None:
    assert store.engines.replica is store.engines.reader
    assert store.runtime.reads.enabled is False
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(store.engines.reader, "before_cursor_execute", record)
    event.listen(store.engines.primary, "before_cursor_execute", record)
    new_id = store.create_assessment(request())
    store.cancel_assessment(new_id)
    seen.clear()
    assert new_id in {a.assessment_id for a in store.list_assessments().items}
    store.get_assessment_stats()
    store.get_system_gauges()
    assert len(seen) == 3, seen
    assert not [s for s in seen if "_wal_" in s]
    assert store.runtime.reads.tracked_callers() == 0


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        yield int(silent.getsockname()[1])


def test_a_replica_that_never_answers_costs_one_connect_timeout_not_a_hang(
    database_url: str, base_settings: Settings, silent_port: int
) -> None:
    settings = load_settings(
        database_url=database_url,
        read_database_url=f"postgresql+psycopg2://postgres@127.0.0.1:{silent_port}/x",
        redis_url=base_settings.redis_url,
    )
    store = quiet_store(settings)
    try:
        attempts: list[object] = []
        event.listen(store.engines.replica, "do_connect", lambda *_: attempts.append(1))
        new_id = store.create_assessment(request())
        # The connect timeout ends the attempt (pytest's timeout would catch a hang)
        # and the primary answers.
        assert store.get_assessment_stats().total == 1
        assert len(attempts) == 1
        # Then the replica is left alone for a while: no new attempt, the primary answers.
        assert new_id in {a.assessment_id for a in store.list_assessments().items}
        assert len(attempts) == 1
    finally:
        store.close()
