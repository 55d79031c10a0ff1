"""Every assessment's message published four times over: exactly one claim, and one
execution of the handler, per attempt."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import text

from assessment_store import AssessmentStore
from assessment_store.dispatch import NullDispatcher, dispatch_item
from assessment_store.publishing import CeleryDispatcher
from ops.chaos.workload import mixed_requests
from tests.faults.conftest import MakeSystem
from tests.waiting import wait_until

pytestmark = pytest.mark.slow
COPIES = 4
COUNT = 150
DUPLICATE = "duplicate_delivery:"


def test_duplicate_deliveries_claim_and_run_each_attempt_exactly_once(
    make_system: MakeSystem,
) -> None:
    # Given 150 assessments stored but not published (some fail their first attempts,
    # so beat publishes retries as well)
    system = make_system()
    rng = random.Random(23)
    requests = mixed_requests(rng, COUNT, min_seconds=0.05, max_seconds=0.2)
    with AssessmentStore(system.settings, dispatcher=NullDispatcher()) as quiet:
        ids = quiet.batch_create_assessments(requests)
    # When each one's run_assessment message is published four times, shuffled, and
    # three workers (and beat) consume them
    items = [
        dispatch_item(aid, request.priority, request, system.settings)
        for aid, request in zip(ids, requests, strict=True)
    ] * COPIES
    rng.shuffle(items)
    dispatcher = CeleryDispatcher(system.settings)
    try:
        dispatcher.dispatch(items)
    finally:
        dispatcher.close()
    system.start_workers("w1", "w2", "w3", concurrency=2)
    system.start_beat()
    # Then every copy but one of each was refused as a duplicate...
    wait_until(
        lambda: system.count_in_worker_logs(DUPLICATE) >= (COPIES - 1) * COUNT,
        timeout=120,
        message=lambda: f"only {system.count_in_worker_logs(DUPLICATE)} duplicates refused",
    )
    # ...and each attempt was claimed once and its handler run once
    system.wait_settled(timeout=120)
    findings = system.check()
    assert findings.problems() == [], system.logs()
    with system.connect() as conn:
        per_assessment = conn.execute(
            text(
                """
                SELECT a.assessment_id,
                       count(*) FILTER (WHERE a.event = 'start') AS starts,
                       count(*) FILTER (WHERE a.event = 'retry') AS retries,
                       (SELECT count(*) FROM chaos_executions AS e
                        WHERE e.assessment_id = a.assessment_id) AS executions
                FROM assessment_state_audit AS a GROUP BY a.assessment_id
                """
            )
        ).all()
    assert len(per_assessment) == COUNT
    assert [
        row for row in per_assessment if not row.starts == row.retries + 1 == row.executions
    ] == []
