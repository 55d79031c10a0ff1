"""An expected outage is logged once, counted, summarised, and its end noted."""

from __future__ import annotations

import logging

import pytest

from assessment_store.outages import OutageLog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]


def test_a_repeated_failure_is_one_line_then_a_count_then_a_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outages = OutageLog(logging.getLogger("test.outages"), every_seconds=60, clock=clock)
    caplog.set_level(logging.INFO, logger="test.outages")
    error = ConnectionError("Error 111 connecting to 127.0.0.1:1.\nConnection refused.")
    for _ in range(30):
        outages.failed("dispatch_failed", error, "1 assessment(s) stay pending")
    assert lines(caplog) == [
        "dispatch_failed: ConnectionError: Error 111 connecting to 127.0.0.1:1. "
        "(1 assessment(s) stay pending); repeats are counted"
    ]
    assert all(r.exc_info is None for r in caplog.records if r.levelno >= logging.INFO)
    clock.now += 61
    outages.failed("dispatch_failed", error)
    assert lines(caplog)[-1].startswith("dispatch_failed: still failing, 30 more time(s)")
    outages.succeeded("dispatch_failed")
    outages.succeeded("dispatch_failed")  # only once
    assert lines(caplog)[-1] == "dispatch_failed: recovered after 31 failure(s) over 61s"
    assert len(lines(caplog)) == 3
    assert not outages.failing("dispatch_failed")


def test_kinds_are_counted_apart_and_tracebacks_stay_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outages = OutageLog(logging.getLogger("test.outages"))
    caplog.set_level(logging.DEBUG, logger="test.outages")
    try:
        raise TimeoutError("x" * 1000)
    except TimeoutError as exc:
        outages.failed("a", exc)
        outages.failed("b", exc)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(":")[0] for r in warnings] == ["a", "b"]
    assert all(len(r.getMessage()) < 400 for r in warnings)
    assert any(r.exc_info for r in caplog.records if r.levelno == logging.DEBUG)
