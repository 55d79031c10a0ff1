"""The row is the promise: creation succeeds with the broker down; work runs later."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from assessment_store import AssessmentState, AssessmentStore, load_settings
from assessment_store.config import Settings
from tests.acceptance.conftest import wait_for
from tests.acceptance.processes import CeleryProcess
from tests.factories import request


def test_assessments_created_while_the_broker_is_down_run_once_it_is_back(
    system_settings: Settings,
    producer: AssessmentStore,
    start_worker: Callable[..., CeleryProcess],
    start_beat: Callable[..., CeleryProcess],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a producer whose broker does not answer
    dead = load_settings(**{**system_settings.model_dump(), "broker_url": "redis://127.0.0.1:1/0"})
    offline = AssessmentStore(dead)
    # When it creates assessments
    with caplog.at_level(logging.WARNING, logger="assessment_store.service"):
        ids = offline.batch_create_assessments([request(assessment_type="noop") for _ in range(5)])
    offline.close()
    # Then creation succeeds (the publish gave up, saying so) and the rows wait as pending
    assert len(ids) == 5
    # One concise line for the outage, no traceback (see assessment_store/outages.py).
    [line] = [r for r in caplog.records if r.getMessage().startswith("dispatch_failed: ")]
    assert "(5 assessment(s) stay pending until re-dispatch)" in line.getMessage()
    assert line.exc_info is None
    assert {producer.get_state(i).state for i in ids} == {AssessmentState.PENDING}
    # And once a worker and beat run against the live broker, re-dispatch delivers them
    start_worker()
    start_beat()
    states = wait_for(producer, ids, lambda a: a.state is AssessmentState.COMPLETED, 60)
    assert {s.state for s in states} == {AssessmentState.COMPLETED}
