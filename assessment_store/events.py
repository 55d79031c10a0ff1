"""``subscribe``: the seed's assessment.* events, read from the audit table.

Every change already writes an audit row in its own transaction, so the audit table
is a durable, cross-process event log. A subscription reads it from a thread of its
own (a slow handler delays only its own subscription), woken by change notifications.
Ids are allocated before commit, so a row can become visible after a higher id: the
reader re-reads the ids it skipped for a while, so late commits are not missed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, RowMapping

from assessment_store import at_rest
from assessment_store.db import reads
from assessment_store.encryption import KeyRing
from assessment_store.errors import DecryptionError, InvalidInputError
from assessment_store.notify import ANY_ASSESSMENT, StateNotifier
from assessment_store.outages import OutageLog
from assessment_store.states import AssessmentState

logger = logging.getLogger("assessment_store.events")
POLL_OUTAGES = OutageLog(logger)

EVENT_TYPES = {
    "create": "assessment.created",
    "start": "assessment.started",
    "progress": "assessment.progress",
    "complete": "assessment.completed",
    "fail": "assessment.failed",
    "cancel": "assessment.cancelled",
    "retry": "assessment.retried",
}
# How long a transaction may sit between taking an audit id and committing it
# (statement_timeout bounds it); a gap older than this was a rollback.
LATE_COMMIT_HORIZON_SECONDS = 90.0
POLL_BATCH = 1000
# How far below the newest id a new subscription looks for not-yet-committed rows.
STARTUP_GAP_WINDOW = 1000


class AssessmentEventMessage(BaseModel):
    """One change of one assessment, as delivered to subscribers."""

    model_config = ConfigDict(frozen=True)

    type: str
    assessment_id: str
    version: int
    old_state: AssessmentState | None
    new_state: AssessmentState
    changed_by: str
    reason: str
    created_at: datetime


EventHandler = Callable[[AssessmentEventMessage], None]
T = TypeVar("T")


class Reader(Protocol):
    """Runs one read-only query on the primary, database errors translated (the
    store's ``Runtime.read``)."""

    def __call__(self, query: Callable[[Connection], T], /) -> T: ...


def poll_until_stopped(
    poll_once: Callable[[], bool],
    stop: threading.Event,
    wake: threading.Event,
    interval: float,
    outages: OutageLog,
    kind: str,
    batch_window: float = 0.0,
) -> None:
    """A reader's loop: ``poll_once`` (again at once while it says a full batch was
    read), then wait for ``wake`` or ``interval`` seconds; after a wake, a further
    ``batch_window`` lets the rest of a burst commit first. Failures are outages
    (one line each, see outages), never the end of the loop."""
    while not stop.is_set():
        try:
            while poll_once() and not stop.is_set():
                pass  # a full batch: more may be waiting
        except Exception as exc:
            outages.failed(f"{kind}_failed", exc)
        else:
            outages.succeeded(f"{kind}_failed")
        if wake.wait(interval) and batch_window:
            stop.wait(batch_window)
        wake.clear()


class AuditCursor:
    """A reader's position in the audit table, late commits included.

    Ids are allocated before commit, so a row can become visible after a higher id:
    the ids skipped over are re-read for LATE_COMMIT_HORIZON_SECONDS, after which they
    are taken for rollbacks. ``watermark`` is the highest id below which nothing more
    can appear: a reader resuming from it misses nothing (it may see a row twice).
    """

    def __init__(self, newest: int, visible: set[int]) -> None:
        self._max_seen = newest
        now = time.monotonic()
        # Ids below the newest that are not visible yet may belong to transactions
        # still committing: watched as any other gap. Id -> when first missed.
        self._gaps: dict[int, float] = {
            i: now
            for i in range(max(1, newest - STARTUP_GAP_WINDOW + 1), newest + 1)
            if i not in visible
        }

    @classmethod
    def starting_now(cls, read: Reader) -> AuditCursor:
        """A cursor at the newest audit row (nothing older is delivered)."""
        newest, visible = read(lambda conn: reads.audit_position(conn, STARTUP_GAP_WINDOW))
        return cls(newest, visible)

    @property
    def watermark(self) -> int:
        return min(self._gaps) - 1 if self._gaps else self._max_seen

    def fetch(self, conn: Connection) -> list[RowMapping]:
        """The late commits and the new rows, by id (the cursor does not move: a
        reader that fails afterwards reads the same rows again)."""
        late = reads.audit_events_by_id(conn, sorted(self._gaps))
        return [*late, *reads.audit_events_after(conn, self._max_seen, POLL_BATCH)]

    def advance(self, rows: Sequence[RowMapping]) -> bool:
        """Move past ``rows`` (what :meth:`fetch` returned, once handled); True when
        the new rows filled a batch (more may be waiting)."""
        now = time.monotonic()
        fresh = 0
        for row in rows:
            if self._gaps.pop(row["id"], None) is not None:
                continue  # a late commit
            if row["id"] > self._max_seen:
                self._gaps.update(dict.fromkeys(range(self._max_seen + 1, row["id"]), now))
                self._max_seen = row["id"]
                fresh += 1
        expired = now - LATE_COMMIT_HORIZON_SECONDS
        self._gaps = {i: seen for i, seen in self._gaps.items() if seen > expired}
        return fresh == POLL_BATCH


class Subscription:
    """A live subscription; :meth:`close` stops it and frees its thread and its watch.

    The audit table is read when a change notification arrives (LISTEN/NOTIFY, see
    ``notify``) and every ``interval`` seconds regardless, so delivery is prompt and a
    lost notification only delays.
    """

    def __init__(
        self,
        read: Reader,
        event_types: frozenset[str],
        handler: EventHandler,
        interval: float,
        notifier: StateNotifier | None = None,
        keys: KeyRing | None = None,
    ) -> None:
        self._read = read
        self._keys = keys
        self._event_types = event_types
        self._handler = handler
        self._interval = interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._cursor = AuditCursor.starting_now(read)
        self._watch = (
            notifier.watch(ANY_ASSESSMENT, lambda _id, _state: self._wake.set())
            if notifier is not None
            else None
        )
        self._thread = threading.Thread(target=self._run, name="assessment-events", daemon=True)
        self._thread.start()

    @property
    def active(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def close(self, timeout: float = 5.0) -> None:
        """Stop delivering; returns once the polling thread has ended."""
        self._stop.set()
        self._wake.set()
        if self._watch is not None:
            self._watch.cancel()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _run(self) -> None:
        poll_until_stopped(
            self._poll_once, self._stop, self._wake, self._interval, POLL_OUTAGES, "event_poll"
        )

    def _poll_once(self) -> bool:
        """Deliver late commits and new rows; True when a full batch was read."""
        rows = self._read(self._cursor.fetch)
        full = self._cursor.advance(rows)
        for row in rows:
            if self._stop.is_set():
                break
            event_type = EVENT_TYPES.get(row["event"], f"assessment.{row['event']}")
            if event_type in self._event_types:
                self._deliver(row, event_type)
        return full

    def _deliver(self, row: RowMapping, event_type: str) -> None:
        try:
            opened = at_rest.open_audit(self._keys, row)
        except DecryptionError as exc:
            # Skipped, not retried forever: this process lacks the key (see at_rest).
            logger.error("event_undecryptable: %s %s: %s", event_type, row["assessment_id"], exc)
            return
        message = AssessmentEventMessage(
            type=event_type,
            assessment_id=row["assessment_id"],
            version=row["version_to"],
            old_state=row["old_state"],
            new_state=row["new_state"],
            changed_by=row["changed_by"],
            reason=opened["change_reason"],
            created_at=row["created_at"],
        )
        try:
            self._handler(message)
        except Exception:
            logger.exception("event_handler_failed: %s %s", event_type, message.assessment_id)


def subscribe_to_audit(
    read: Reader,
    event_types: Sequence[str],
    handler: EventHandler,
    interval: float,
    notifier: StateNotifier | None = None,
    *,
    keys: KeyRing | None = None,
) -> Subscription:
    """Start a subscription to ``event_types`` (e.g. ``["assessment.completed"]``)."""
    wanted = frozenset(event_types)
    unknown = wanted - set(EVENT_TYPES.values())
    if not wanted or unknown:
        raise InvalidInputError(
            "eventTypes", f"must be some of {sorted(EVENT_TYPES.values())}", sorted(unknown)
        )
    if not callable(handler):
        raise InvalidInputError("handler", "must be callable", handler)
    return Subscription(read, wanted, handler, interval, notifier, keys)
