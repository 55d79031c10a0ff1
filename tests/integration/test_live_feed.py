"""LiveFeed: every committed change reaches every subscriber once, late commits
included, from reads whose number does not depend on how many subscribers there are;
``replay`` reads everything above a watermark again."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.exc import OperationalError

from assessment_store import live
from assessment_store.errors import StoreUnavailableError
from assessment_store.events import Reader
from assessment_store.live import ChangeBatch, LiveFeed
from assessment_store.service import AssessmentStore
from assessment_store.states import AssessmentState
from tests.factories import request
from tests.waiting import wait_until

T = TypeVar("T")
WAIT = 20.0


class Sink:
    """Collects the batches it is handed (on the feed's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._batches: list[ChangeBatch] = []

    def __call__(self, batch: ChangeBatch) -> None:
        with self._lock:
            self._batches.append(batch)

    @property
    def batches(self) -> list[ChangeBatch]:
        with self._lock:
            return list(self._batches)

    def audit_ids(self) -> list[int]:
        return [e.id for b in self.batches for e in b.entries]

    def has(self, assessment_id: str, version: int) -> bool:
        return any(
            (e.assessment_id, e.version_to) == (assessment_id, version)
            for b in self.batches
            for e in b.entries
        )


def audit_ids(raw_engine: Engine, after: int = 0) -> list[int]:
    with raw_engine.connect() as conn:
        return list(
            conn.execute(
                text("SELECT id FROM assessment_state_audit WHERE id > :a ORDER BY id"),
                {"a": after},
            ).scalars()
        )


@pytest.fixture
def feed(store: AssessmentStore) -> Iterator[LiveFeed]:
    # A short interval: rows written by raw SQL below send no notification.
    opened = LiveFeed(store.runtime.read, store.notifier, keys=store.runtime.keys, interval=0.1)
    yield opened
    opened.close()


def wait_for(sink: Sink, assessment_id: str, version: int) -> None:
    wait_until(
        lambda: sink.has(assessment_id, version),
        timeout=WAIT,
        message=lambda: f"{assessment_id} v{version} never arrived: {sink.audit_ids()}",
    )


def test_each_committed_change_reaches_each_subscriber_once_with_current_rows(
    store: AssessmentStore, feed: LiveFeed, raw_engine: Engine
) -> None:
    sinks = [Sink() for _ in range(3)]
    for sink in sinks:
        feed.subscribe(sink)
    first = store.create_assessment(request(), created_by="alice")
    second = store.create_assessment(request(), created_by="bob")
    store.start_processing(first, "w1")
    store.update_progress(first, 50, "half")
    store.complete_assessment(first, {"ok": True})
    store.cancel_assessment(second, "no")
    many = store.batch_create_assessments([request() for _ in range(5)], created_by="carol")
    sentinel = store.create_assessment(request(), created_by="alice")
    for sink in sinks:
        wait_for(sink, sentinel, 1)
    expected = audit_ids(raw_engine)
    assert len(expected) == 6 + 5 + 1
    for sink in sinks:
        assert sink.audit_ids() == expected  # each once, in order
        for batch in sink.batches:
            for entry in batch.entries:
                # The batch carries the row as it is now, not older than the change.
                assert batch.assessments[entry.assessment_id].version >= entry.version_to
    # One read per batch, the very same batch handed to every subscriber.
    assert [id(b) for b in sinks[0].batches] == [id(b) for b in sinks[2].batches]
    assert feed.batches_read == len(sinks[0].batches)
    # The last batch that mentions each assessment holds its final row.
    last_seen = {a: b.assessments[a] for b in sinks[0].batches for a in b.assessments}
    for assessment_id in (first, second, *many, sentinel):
        current = store.get_fresh_state(assessment_id)
        seen = last_seen[assessment_id]
        assert (seen.state, seen.version) == (current.state, current.version)
    assert last_seen[first].state is AssessmentState.COMPLETED
    assert last_seen[first].result_data == {"ok": True}


def test_a_late_commit_is_delivered_and_the_watermark_waits_for_it(
    store: AssessmentStore, feed: LiveFeed, raw_engine: Engine
) -> None:
    sink = Sink()
    feed.subscribe(sink)
    early = store.create_assessment(request(), created_by="alice")
    wait_for(sink, early, 1)
    with raw_engine.connect() as conn:
        late = conn.begin()
        # A change that takes its audit id now and commits later (as a slow transaction).
        conn.execute(
            text(
                "UPDATE assessment_states SET state = 'cancelled', version = 2, "
                "message = 'late', completed_at = now(), updated_at = now() "
                "WHERE assessment_id = :id"
            ),
            {"id": early},
        )
        late_id = conn.execute(
            text(
                "INSERT INTO assessment_state_audit (assessment_id, event, old_state, "
                "new_state, version_from, version_to, changed_by, change_reason) "
                "VALUES (:id, 'cancel', 'pending', 'cancelled', 1, 2, 'slow-writer', "
                "'cancelled: late') RETURNING id"
            ),
            {"id": early},
        ).scalar_one()
        later = [store.create_assessment(request(), created_by="bob") for _ in range(3)]
        for assessment_id in later:
            wait_for(sink, assessment_id, 1)
        assert max(audit_ids(raw_engine)) > late_id  # later rows are visible, above it
        assert all(b.watermark < late_id for b in sink.batches), [b.watermark for b in sink.batches]
        assert feed.position() < late_id
        before_commit = sink.batches[-1].watermark
        late.commit()
    wait_for(sink, early, 2)
    delivered = [
        (b, e)
        for b in sink.batches
        for e in b.entries
        if (e.assessment_id, e.version_to) == (early, 2)
    ]
    assert len(delivered) == 1
    batch, entry = delivered[0]
    assert (entry.id, entry.changed_by) == (late_id, "slow-writer")
    assert (batch.assessments[early].state, batch.assessments[early].version) == (
        AssessmentState.CANCELLED,
        2,
    )
    assert batch.watermark >= max(audit_ids(raw_engine))
    assert sorted(sink.audit_ids()) == audit_ids(raw_engine) == sorted(set(sink.audit_ids()))
    # A watcher that stopped at the watermark before the commit gets it on replay.
    replayed = feed.replay(before_commit)
    assert replayed is not None and late_id in {e.id for e in replayed.entries}


def test_replay_returns_every_row_above_the_watermark(
    store: AssessmentStore, feed: LiveFeed, raw_engine: Engine
) -> None:
    store.create_assessment(request(), created_by="alice")
    after = feed.position()
    assert after == max(audit_ids(raw_engine))
    first = store.create_assessment(request(), created_by="alice")
    store.start_processing(first, "w1")
    second = store.create_assessment(request(), created_by="bob")
    store.cancel_assessment(second, "no")
    batch = feed.replay(after)
    assert batch is not None
    assert [e.id for e in batch.entries] == audit_ids(raw_engine, after)
    assert [(e.assessment_id, e.version_to) for e in batch.entries] == [
        (first, 1),
        (first, 2),
        (second, 1),
        (second, 2),
    ]
    assert set(batch.assessments) == {first, second}
    assert batch.assessments[second].state is AssessmentState.CANCELLED
    assert batch.watermark == max(audit_ids(raw_engine))
    middle = batch.entries[1].id
    assert [e.id for e in feed.replay(middle).entries] == audit_ids(raw_engine, middle)  # type: ignore[union-attr]
    nothing = feed.replay(batch.watermark)
    assert nothing is not None and list(nothing.entries) == [] and nothing.assessments == {}


def test_replay_past_max_replay_rows_says_reload(
    store: AssessmentStore, feed: LiveFeed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "MAX_REPLAY_ROWS", 4)
    after = feed.position()
    for _ in range(4):
        store.create_assessment(request(), created_by="alice")
    within = feed.replay(after)
    assert within is not None and len(within.entries) == 4
    store.create_assessment(request(), created_by="alice")
    assert feed.replay(after) is None
    assert feed.replay(after + 1) is not None


def test_a_cancelled_subscriber_receives_nothing_more(
    store: AssessmentStore, feed: LiveFeed
) -> None:
    leaving, staying = Sink(), Sink()
    handle = feed.subscribe(leaving)
    feed.subscribe(staying)
    before = store.create_assessment(request(), created_by="alice")
    wait_for(leaving, before, 1)
    wait_for(staying, before, 1)
    handle.cancel()
    assert feed.subscriber_count == 1
    after = [store.create_assessment(request(), created_by="alice") for _ in range(3)]
    for assessment_id in after:
        wait_for(staying, assessment_id, 1)
    assert not any(leaving.has(assessment_id, 1) for assessment_id in after)
    handle.cancel()  # twice is harmless
    assert feed.subscriber_count == 1


def test_the_feed_reads_the_same_however_many_subscribe(store: AssessmentStore) -> None:
    reads: Counter[str] = Counter()
    statements: Counter[str] = Counter()

    def on_feed_thread() -> bool:
        return threading.current_thread().name == "live-feed"

    def count_statement(*_: Any) -> None:
        if on_feed_thread():
            statements["feed"] += 1

    def counting_read(query: Callable[[Connection], T]) -> T:
        if on_feed_thread():
            reads["feed"] += 1
        return store.runtime.read(query)

    engine = store.engines.reader
    event.listen(engine, "before_cursor_execute", count_statement)
    feed = LiveFeed(counting_read, store.notifier, interval=0.1)
    try:
        per_read = []
        sinks = [Sink()]
        feed.subscribe(sinks[0])
        for subscribers in (1, 50):
            while len(sinks) < subscribers:
                sinks.append(Sink())
                feed.subscribe(sinks[-1])
            reads.clear()
            statements.clear()
            batches_before = feed.batches_read
            made = [store.create_assessment(request(), created_by="a") for _ in range(5)]
            for sink in sinks:
                for assessment_id in made:
                    wait_for(sink, assessment_id, 1)
            # Every subscriber got every change from at most one read per change...
            assert feed.batches_read - batches_before <= len(made)
            # ...and a poll is a fixed few statements (its snapshot's begin and end,
            # gaps, new rows, current rows).
            assert reads["feed"] > 0 and statements["feed"] <= 5 * reads["feed"]
            per_read.append(statements["feed"] / reads["feed"])
        assert feed.subscriber_count == 50
        assert all(ratio <= 5 for ratio in per_read), per_read
    finally:
        feed.close()
        event.remove(engine, "before_cursor_execute", count_statement)


class _BeforeCurrentRows:
    """A connection that, before a read of current rows (after the poll read the audit
    rows), runs the next of ``actions`` once: a dropped statement, a change committing
    midway..."""

    def __init__(self, conn: Connection, actions: list[Callable[[], object]]) -> None:
        self._conn = conn
        self._actions = actions

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if self._actions and "FROM assessment_states WHERE assessment_id = ANY" in str(statement):
            self._actions.pop()()
        return self._conn.execute(statement, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def reading_with(store: AssessmentStore, actions: list[Callable[[], object]]) -> Reader:
    """The store's read, through :class:`_BeforeCurrentRows` with ``actions``."""

    def read(query: Callable[[Connection], T]) -> T:
        return store.runtime.read(lambda conn: query(_BeforeCurrentRows(conn, actions)))  # type: ignore[arg-type]

    return read


def _drop_statement() -> None:
    raise OperationalError("SELECT", {}, Exception("server closed the connection"))


def test_a_failed_poll_loses_no_change(store: AssessmentStore) -> None:
    armed: list[Callable[[], object]] = []
    feed = LiveFeed(reading_with(store, armed), store.notifier, interval=0.1)
    sink = Sink()
    try:
        feed.subscribe(sink)
        armed.append(_drop_statement)
        lost = store.create_assessment(request(), created_by="alice")
        wait_until(lambda: not armed, timeout=WAIT, message="the failing read never ran")
        sentinel = store.create_assessment(request(), created_by="alice")
        wait_for(sink, sentinel, 1)
        assert sink.has(lost, 1), sink.audit_ids()
    finally:
        feed.close()


def test_a_subscribe_that_fails_leaves_no_subscriber_behind(store: AssessmentStore) -> None:
    calls: list[int] = []

    def read(query: Callable[[Connection], T]) -> T:
        calls.append(1)
        if len(calls) == 1:
            raise StoreUnavailableError("PostgreSQL is unreachable (a test's outage)")
        return store.runtime.read(query)

    feed = LiveFeed(read, store.notifier, interval=0.1)
    refused, accepted = Sink(), Sink()
    try:
        with pytest.raises(StoreUnavailableError):
            feed.subscribe(refused)  # the caller never got a handle to cancel
        feed.subscribe(accepted)
        created = store.create_assessment(request(), created_by="alice")
        wait_for(accepted, created, 1)
        assert refused.batches == [] and feed.subscriber_count == 1
    finally:
        feed.close()


@pytest.mark.parametrize("path", ["poll", "replay"])
def test_a_record_never_arrives_ahead_of_its_audit_rows(store: AssessmentStore, path: str) -> None:
    change: list[Callable[[], object]] = []
    feed = LiveFeed(reading_with(store, change), store.notifier, interval=0.1)
    sink = Sink()
    try:
        # Given a feed whose read is interrupted by a commit between its two queries
        feed.subscribe(sink)
        before = feed.position()
        created = store.create_assessment(request(), created_by="alice")
        change.append(lambda: store.start_processing(created, "w1"))
        # When it reads the creation (live, or replayed from a watermark)
        if path == "poll":
            wait_for(sink, created, 1)
            wait_until(lambda: not change, timeout=WAIT, message="the change never ran")
            batch = next(b for b in sink.batches if created in b.assessments)
        else:
            wait_for(sink, created, 1)  # the live read ran (and its change is spent)
            change.append(lambda: store.update_progress(created, 10, "early"))
            replayed = feed.replay(before)
            assert replayed is not None
            batch = replayed
        # Then the record it carries is the one its audit rows end at: the change that
        # committed midway comes whole (record and audit row) in a later read
        versions = [e.version_to for e in batch.entries if e.assessment_id == created]
        assert batch.assessments[created].version == max(versions), versions
    finally:
        feed.close()
