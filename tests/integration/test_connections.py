"""Pooled connections are not pinged before use: a transaction or a read that meets a
connection PostgreSQL has dropped runs again on a fresh one, and nothing is doubled."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import Connection, text

from assessment_store import AssessmentState, AssessmentStore
from tests.chain import audit_chain_problems
from tests.factories import processing, request
from tests.waiting import wait_until

STORE_BACKENDS = (
    "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND application_name IN ('assessment-store', 'assessment-store-reader')"
)


def drop_store_connections(conn: Connection) -> int:
    """Terminate the store's pooled connections and wait until they are gone."""
    killed = conn.execute(text(f"SELECT count(pg_terminate_backend(pid)) {STORE_BACKENDS}"))
    count = int(killed.scalar_one())
    conn.commit()

    def gone() -> bool:
        remaining = conn.execute(text(f"SELECT count(*) {STORE_BACKENDS}")).scalar_one()
        conn.rollback()
        return int(remaining) == 0

    wait_until(gone, timeout=30, message="terminated backends did not go away")
    return count


def test_changes_and_reads_after_postgresql_dropped_every_pooled_connection_succeed(
    store: AssessmentStore, raw_conn: Connection, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a store whose pools hold connections (a transaction and a read each)
    running = processing(store)
    assert store.get_state(running.assessment_id).state is AssessmentState.PROCESSING
    # When PostgreSQL drops all of them (as a restart would)
    assert drop_store_connections(raw_conn) >= 2
    # Then the next change and the next read work, each exactly once
    with caplog.at_level(logging.INFO, logger="assessment_store"):
        done = store.complete_assessment(running.assessment_id, {"ok": True})
    assert "statement_retried" in caplog.text, "the dead connection was met and replaced"
    assert done.state is AssessmentState.COMPLETED and done.version == running.version + 1
    assert store.get_state(running.assessment_id).version == done.version
    # And creation works too, writing each row once
    drop_store_connections(raw_conn)
    created = store.create_assessment(request())
    assert store.get_audit_trail(created)[0].event == "create"
    assert audit_chain_problems(raw_conn) == []
