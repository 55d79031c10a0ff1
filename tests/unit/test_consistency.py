"""Read-your-writes bookkeeping without a server: who the caller is, what is
remembered and for how long, WAL positions. (Where reads go: tests/replica.)"""

from __future__ import annotations

from typing import Any, cast

import pytest
from sqlalchemy import Connection

from assessment_store import consistency
from assessment_store.config import load_settings
from assessment_store.consistency import ReadRouter, acting_as, current_caller
from assessment_store.db import replication
from assessment_store.db.engine import Engines
from assessment_store.errors import ConfigurationError

REPLICA = "postgresql+psycopg2://postgres@127.0.0.1:1/replica"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def router(window: float = 5.0, replica: str | None = REPLICA) -> tuple[ReadRouter, Clock]:
    clock = Clock()
    engines = Engines(load_settings(read_database_url=replica))  # lazy: never connects
    return ReadRouter(engines, window, clock=clock), clock


def test_acting_as_names_the_caller_within_its_block_only() -> None:
    assert current_caller() is None
    with acting_as("alice"):
        assert current_caller() == "alice"
        with acting_as("bob"):
            assert current_caller() == "bob"
        assert current_caller() == "alice"
    assert current_caller() is None


def test_each_caller_is_remembered_once_and_forgotten_after_the_window() -> None:
    reads, clock = router(window=5.0)
    reads.wrote()
    for caller in ("alice", "bob", "alice"):
        with acting_as(caller):
            reads.wrote()
    assert reads.tracked_callers() == 3  # the store itself, alice, bob
    clock.now += 5.5
    assert reads._recent_mark("alice") is None
    assert reads.tracked_callers() == 2


def test_the_remembered_callers_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consistency, "MAX_TRACKED_CALLERS", 3)
    reads, clock = router()
    for n in range(10):
        clock.now += 0.1
        with acting_as(f"caller-{n}"):
            reads.wrote()
    assert reads.tracked_callers() == 3
    assert reads._recent_mark("caller-9") is not None  # the newest stay
    assert reads._recent_mark("caller-0") is None


@pytest.mark.parametrize(("window", "replica"), [(5.0, None), (0.0, REPLICA)])
def test_without_a_replica_or_a_window_nothing_is_remembered(
    window: float, replica: str | None
) -> None:
    reads, _ = router(window=window, replica=replica)
    reads.wrote()
    assert reads.tracked_callers() == 0
    assert reads.enabled is (replica is not None)


def test_the_window_setting_is_validated() -> None:
    assert load_settings().read_your_writes_seconds == 5.0
    with pytest.raises(ConfigurationError, match="READ_YOUR_WRITES_SECONDS"):
        load_settings(read_your_writes_seconds=-1)


class _Result:
    def __init__(self, row: tuple[Any, ...]) -> None:
        self._row = row

    def one(self) -> tuple[Any, ...]:
        return self._row


class _Conn:
    def __init__(self, lsn: str) -> None:
        self._lsn = lsn

    def execute(self, _statement: object) -> _Result:
        return _Result((self._lsn, 8192, 16 * 1024 * 1024))


def test_lsns_parse_and_a_position_just_past_a_page_header_is_the_page_boundary() -> None:
    assert replication.parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848

    def insert(lsn: str) -> int:
        return replication.insert_lsn(cast(Connection, _Conn(lsn)))

    assert insert("0/3000028") == 0x3000000  # a segment's first page: the long header
    assert insert("0/3002018") == 0x3002000  # any other page: the short header
    assert insert("0/3002060") == 0x3002060  # records on the page: as reported
