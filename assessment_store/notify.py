"""Push notifications of state changes: PostgreSQL LISTEN/NOTIFY, one listener per process.

Every transition's statement calls ``pg_notify('assessment_state', '<id> <state>')``
inside its own transaction, so a notification is sent exactly when the change commits
(and never for a rolled-back one). Creations notify ``'* pending'`` once per batch.

A process that waits (the API, a caller of ``wait_for_completion``) keeps one LISTEN
connection in a daemon thread and fans notifications out to in-memory callbacks, so a
thousand waiters cost one connection, not a thousand. Waiters still re-check the
database now and then: if the listener's connection drops, notifications sent while
it was away are lost, so on reconnecting it wakes every waiter to re-check at once.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg2
import psycopg2.extensions
from sqlalchemy import make_url

logger = logging.getLogger("assessment_store.notify")

CHANNEL = "assessment_state"
ANY_ASSESSMENT = "*"
RECONNECT_SECONDS = 1.0
SELECT_TIMEOUT_SECONDS = 1.0

Callback = Callable[[str, str], None]  # (assessment id, new state)


def libpq_dsn(database_url: str) -> str:
    """A SQLAlchemy URL as a libpq connection URI psycopg2 accepts."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass(eq=False)  # identity equality: each handle is distinct in a set
class _Watch:
    key: str
    callback: Callback
    notifier: StateNotifier

    def cancel(self) -> None:
        """Stop calling back (idempotent)."""
        self.notifier._remove(self)


@dataclass
class StateNotifier:
    """LISTENs on one connection and calls the callbacks registered for each id."""

    database_url: str
    _watches: dict[str, set[_Watch]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    connected: threading.Event = field(default_factory=threading.Event)
    # (thread's end, close()'s end) while a thread listens: close() writes to it so
    # that the thread's select returns at once, not at its next timeout.
    _interrupt: tuple[socket.socket, socket.socket] | None = None

    def watch(self, assessment_id: str, callback: Callback) -> _Watch:
        """Call ``callback(id, state)`` on every change of ``assessment_id`` (``"*"``: of
        any assessment) until the returned handle is cancelled."""
        handle = _Watch(assessment_id, callback, self)
        with self._lock:
            self._watches.setdefault(assessment_id, set()).add(handle)
        self._ensure_started()
        return handle

    def _remove(self, handle: _Watch) -> None:
        with self._lock:
            watches = self._watches.get(handle.key)
            if watches is not None:
                watches.discard(handle)
                if not watches:
                    del self._watches[handle.key]

    @property
    def watch_count(self) -> int:
        with self._lock:
            return sum(len(w) for w in self._watches.values())

    def _ensure_started(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="assessment-notify", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop listening (waiters fall back to re-checking on their own)."""
        self._stop.set()
        interrupt = self._interrupt
        if interrupt is not None:
            with contextlib.suppress(OSError):  # the thread closed it: it has ended
                interrupt[1].send(b"x")
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        interrupt = socket.socketpair()
        self._interrupt = interrupt
        try:
            self._run_until_stopped(interrupt[0])
        finally:
            self._interrupt = None
            for end in interrupt:
                end.close()

    def _run_until_stopped(self, interrupted: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                connection = psycopg2.connect(
                    libpq_dsn(self.database_url), application_name="assessment-store-listen"
                )
            except psycopg2.Error as exc:
                logger.warning("listen_connect_failed: %s", str(exc).strip())
                self._stop.wait(RECONNECT_SECONDS)
                continue
            try:
                connection.set_isolation_level(psycopg2.extensions.ISOLATION_LEVEL_AUTOCOMMIT)
                with connection.cursor() as cursor:
                    cursor.execute(f"LISTEN {CHANNEL}")
                self.connected.set()
                # Changes committed before LISTEN took effect (at start, or while we
                # were reconnecting) were not heard: every waiter re-checks now.
                self._wake_everyone()
                self._listen(connection, interrupted)
            except (psycopg2.Error, OSError) as exc:
                logger.warning("listen_connection_lost: %s", str(exc).strip())
            finally:
                self.connected.clear()
                connection.close()
        self.connected.clear()

    def _listen(
        self, connection: psycopg2.extensions.connection, interrupted: socket.socket
    ) -> None:
        while not self._stop.is_set():
            listening = connection.fileno()
            readable, _, _ = select.select(
                [listening, interrupted.fileno()], [], [], SELECT_TIMEOUT_SECONDS
            )
            if listening not in readable:
                continue  # a timeout, or close() interrupting: the loop checks _stop
            connection.poll()
            while connection.notifies:
                note = connection.notifies.pop(0)
                assessment_id, _, state = note.payload.partition(" ")
                self._dispatch(assessment_id, state)

    def _dispatch(self, assessment_id: str, state: str) -> None:
        with self._lock:
            targets = {
                *self._watches.get(assessment_id, ()),
                *self._watches.get(ANY_ASSESSMENT, ()),
            }
        for handle in targets:
            try:
                handle.callback(assessment_id, state)
            except Exception:
                logger.exception("notify_callback_failed: %s", assessment_id)

    def _wake_everyone(self) -> None:
        with self._lock:
            targets = [h for watches in self._watches.values() for h in watches]
        for handle in targets:
            try:
                handle.callback(handle.key, "")
            except Exception:
                logger.exception("notify_callback_failed: %s", handle.key)


def wait_until(event: threading.Event, deadline: float, recheck_seconds: float) -> None:
    """Sleep until ``event`` is set, the deadline passes, or it is time to re-check."""
    event.wait(max(0.0, min(deadline - time.monotonic(), recheck_seconds)))
    event.clear()
