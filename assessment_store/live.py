"""LiveFeed: one process's stream of assessment changes, shared by all its watchers.

The dashboard's live updates come from here. One thread per process reads the audit
table (an ``AuditCursor``: late commits included) when a change notification arrives
(the process's one LISTEN connection) and every ``interval`` seconds regardless, then
reads the current rows of the assessments that changed, both in one snapshot (a
record never arrives ahead of its audit rows): a few statements per batch of
changes, however many dashboards are open. Each batch goes to every sink; what a
watcher may see is decided at the edge, where the watcher's identity is known.

A watcher that was away resumes with :meth:`LiveFeed.replay` from the ``watermark``
of the last batch it saw: every audit row above it, read from the table again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import Connection, RowMapping

from assessment_store import at_rest
from assessment_store.db import reads
from assessment_store.encryption import KeyRing
from assessment_store.errors import DecryptionError
from assessment_store.events import (
    STARTUP_GAP_WINDOW,
    AuditCursor,
    Reader,
    poll_until_stopped,
)
from assessment_store.models import FROM_DATABASE, Assessment, AuditEntry
from assessment_store.notify import ANY_ASSESSMENT, StateNotifier, _Watch
from assessment_store.outages import OutageLog

logger = logging.getLogger("assessment_store.live")
FEED_OUTAGES = OutageLog(logger)
# A watcher further behind than this many audit rows reloads instead of replaying.
MAX_REPLAY_ROWS = 5000
# After a notification, how long the feed lets further changes gather before it reads:
# a burst becomes one batch (one message per watcher) instead of one per change. With
# 200 dashboards open, one batch per change saturated an API process at 30 changes/s.
BATCH_WINDOW_SECONDS = 0.1


@dataclass(frozen=True)
class ChangeBatch:
    """Changes of some assessments: their audit rows (by id) and current rows.

    ``watermark``: every audit row at or below it has been delivered, in this batch or
    an earlier one, so a watcher resuming from it misses nothing."""

    watermark: int
    entries: Sequence[AuditEntry]
    assessments: dict[str, Assessment]
    # Memo of what the edge made of this very batch (a message encoded once for all
    # the watchers that see the same thing); shared by its visible_to() parts.
    rendered: dict[object, str] = field(default_factory=dict, compare=False)

    @classmethod
    def merged(cls, batches: Sequence[ChangeBatch]) -> ChangeBatch:
        """One batch holding several (a watcher that fell behind catches up in one
        message): each assessment at its newest version, every audit row once."""
        if len(batches) == 1:
            return batches[0]
        assessments: dict[str, Assessment] = {}
        entries: dict[tuple[str, int], AuditEntry] = {}
        for batch in batches:
            for key, assessment in batch.assessments.items():
                known = assessments.get(key)
                if known is None or known.version < assessment.version:
                    assessments[key] = assessment
            for entry in batch.entries:
                entries.setdefault((entry.assessment_id, entry.version_to), entry)
        ordered = sorted(entries.values(), key=lambda e: e.id)
        return cls(max(b.watermark for b in batches), ordered, assessments)

    def visible_to(self, owner: str | None) -> ChangeBatch:
        """The part of the batch ``owner`` may see (None: everything, an admin's)."""
        if owner is None:
            return self
        mine = {k: a for k, a in self.assessments.items() if a.created_by == owner}
        return ChangeBatch(
            self.watermark,
            [e for e in self.entries if e.assessment_id in mine],
            mine,
            self.rendered,
        )


Sink = Callable[[ChangeBatch], None]


@dataclass(eq=False)
class FeedSubscription:
    sink: Sink
    feed: LiveFeed

    def cancel(self) -> None:
        self.feed._remove(self)


class LiveFeed:
    """Reads changes once per process and hands every batch to each subscriber's sink.

    Sinks run on the feed's thread and must not block (the HTTP edge hands batches to
    its event loop). The thread starts with the first subscriber; while there is none,
    it reads nothing."""

    def __init__(
        self,
        read: Reader,
        notifier: StateNotifier,
        *,
        keys: KeyRing | None = None,
        interval: float = 1.0,
        batch_window: float = BATCH_WINDOW_SECONDS,
    ) -> None:
        self._read = read
        self._notifier = notifier
        self._keys = keys
        self._interval = interval
        self._batch_window = batch_window
        self._subscribers: set[FeedSubscription] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cursor: AuditCursor | None = None
        self._watch: _Watch | None = None
        self.batches_read = 0  # how many polls found changes (benchmarks read it)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def subscribe(self, sink: Sink) -> FeedSubscription:
        """Call ``sink`` with every batch from now on, until the handle is cancelled."""
        handle = FeedSubscription(sink, self)
        with self._lock:
            if self._cursor is None:
                # Placed before the first subscriber returns, so whatever commits after
                # subscribe() is delivered (and if it cannot be read, nobody is added).
                self._cursor = AuditCursor.starting_now(self._read)
            self._subscribers.add(handle)
            if self._thread is None:
                self._watch = self._notifier.watch(ANY_ASSESSMENT, self._on_notify)
                self._thread = threading.Thread(target=self._run, name="live-feed", daemon=True)
                self._thread.start()
        return handle

    def _remove(self, handle: FeedSubscription) -> None:
        with self._lock:
            self._subscribers.discard(handle)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if self._watch is not None:
            self._watch.cancel()
        if thread is not None:
            thread.join(timeout=5)

    def position(self) -> int:
        """A watermark for a watcher starting now (a page just rendered): nothing that
        commits after this call lies at or below it."""
        newest, visible = self._read(lambda conn: reads.audit_position(conn, STARTUP_GAP_WINDOW))
        return AuditCursor(newest, visible).watermark

    def replay(self, after: int) -> ChangeBatch | None:
        """Every change above the watermark ``after``, as one batch; None when there
        are more than MAX_REPLAY_ROWS (the watcher should reload instead)."""

        def query(conn: Connection) -> tuple[list[RowMapping], list[RowMapping], int] | None:
            with reads.one_snapshot(conn):
                newest, visible = reads.audit_position(conn, STARTUP_GAP_WINDOW)
                rows = reads.audit_events_after(conn, after, MAX_REPLAY_ROWS + 1)
                if len(rows) > MAX_REPLAY_ROWS:
                    return None
                ids = sorted({row["assessment_id"] for row in rows})
                watermark = max(after, AuditCursor(newest, visible).watermark)
                return rows, reads.fetch_assessments(conn, ids), watermark

        found = self._read(query)
        if found is None:
            return None
        rows, current, watermark = found
        return self._batch(watermark, rows, current)

    def _on_notify(self, _assessment_id: str, _state: str) -> None:
        self._wake.set()

    def _run(self) -> None:
        poll_until_stopped(
            self._poll_once,
            self._stop,
            self._wake,
            self._interval,
            FEED_OUTAGES,
            "live_feed_poll",
            batch_window=self._batch_window,
        )

    def _poll_once(self) -> bool:
        with self._lock:
            if not self._subscribers:
                # Nobody watches: no query. The next subscriber starts a cursor of its
                # own now (it replays what it missed from its page's position).
                self._cursor = None
                return False
            cursor = self._cursor
        assert cursor is not None  # placed by subscribe

        def query(conn: Connection) -> tuple[list[RowMapping], list[RowMapping]]:
            # One snapshot: each record comes with every audit row up to its version.
            with reads.one_snapshot(conn):
                rows = cursor.fetch(conn)
                ids = sorted({row["assessment_id"] for row in rows})
                return rows, reads.fetch_assessments(conn, ids)

        rows, current = self._read(query)
        if not rows:
            return False
        # The cursor moves only once the batch is built: if a read or a row fails
        # before, the next poll reads the same changes again.
        built = self._batch(0, rows, current)
        full = cursor.advance(rows)
        batch = replace(built, watermark=cursor.watermark)
        self.batches_read += 1
        with self._lock:
            targets = list(self._subscribers)
        for subscriber in targets:
            try:
                subscriber.sink(batch)
            except Exception:
                logger.exception("live_feed_sink_failed")
        return full

    def _batch(
        self, watermark: int, rows: Sequence[RowMapping], current: Sequence[RowMapping]
    ) -> ChangeBatch:
        entries: list[AuditEntry] = []
        assessments: dict[str, Assessment] = {}
        for row in current:
            try:
                opened = at_rest.open_row(self._keys, row)
            except DecryptionError as exc:
                logger.error("live_feed_undecryptable: %s: %s", row["assessment_id"], exc)
                continue
            assessment = Assessment.model_validate(dict(opened), context=FROM_DATABASE)
            assessments[assessment.assessment_id] = assessment
        for row in rows:
            if row["assessment_id"] not in assessments:
                continue  # deleted by retention since, or undecryptable
            try:
                opened_audit = at_rest.open_audit(self._keys, row)
            except DecryptionError as exc:
                logger.error("live_feed_undecryptable: %s: %s", row["assessment_id"], exc)
                continue
            entries.append(AuditEntry.model_validate(dict(opened_audit), context=FROM_DATABASE))
        return ChangeBatch(watermark, entries, assessments)
