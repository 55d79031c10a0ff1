"""The old system's event emitter (seed 002, section 4.1, ``AssessmentEventEmitter``):
listeners register for event names with ``on`` and leave with ``off``; ``emit`` queues
an event and a delivery thread hands it, in order, to every listener of its name; a
failing listener is logged and skipped. Nothing is persisted: an event emitted with
nobody listening is gone.

A listener of ``assessment.updated`` (the old catch-all) gets every event, with that
type.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
from collections.abc import Sequence

from assessment_store.errors import InvalidInputError
from assessment_store.events import AssessmentEventMessage, EventHandler
from assessment_store.migration.legacy import EVENT_TYPES, UPDATED
from assessment_store.models import utc_now

logger = logging.getLogger("assessment_store.migration.legacy")
_ids = itertools.count(1)


def check_event_types(event_types: Sequence[str]) -> frozenset[str]:
    """The event names as a set; InvalidInputError for none or an unknown one."""
    if isinstance(event_types, str):
        event_types = [event_types]
    wanted = frozenset(event_types)
    unknown = sorted(wanted - set(EVENT_TYPES))
    if not wanted or unknown:
        raise InvalidInputError("eventTypes", f"must be some of {list(EVENT_TYPES)}", unknown)
    return wanted


class Listener:
    """One ``on(...)`` registration (the seed's EventSubscription)."""

    def __init__(self, emitter: EventEmitter, types: frozenset[str], handler: EventHandler):
        self.id = f"sub_{os.getpid()}_{next(_ids)}"
        self.event_types = types
        self.handler = handler
        self.created_at = utc_now()
        self._emitter = emitter

    @property
    def active(self) -> bool:
        return self._emitter.is_listening(self.id)

    def close(self, timeout: float = 5.0) -> None:
        self._emitter.off(self.id)

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class EventEmitter:
    """Events by name, delivered in order from one thread (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[str, Listener] = {}
        self._events: queue.SimpleQueue[AssessmentEventMessage | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def on(self, event_types: Sequence[str], handler: EventHandler) -> Listener:
        """Call ``handler`` for every event of ``event_types`` until ``off``."""
        wanted = check_event_types(event_types)
        if not callable(handler):
            raise InvalidInputError("handler", "must be callable", handler)
        listener = Listener(self, wanted, handler)
        with self._lock:
            self._listeners[listener.id] = listener
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._deliver, name="legacy-events", daemon=True
                )
                self._thread.start()
        return listener

    def off(self, subscription_id: str) -> bool:
        """Remove a listener; False when there was none of that id."""
        with self._lock:
            return self._listeners.pop(subscription_id, None) is not None

    def is_listening(self, subscription_id: str) -> bool:
        return subscription_id in self._listeners

    def emit(self, event: AssessmentEventMessage) -> None:
        """Queue ``event`` for delivery to the listeners of its type."""
        if self._listeners:
            self._events.put(event)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, then stop the delivery thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._events.put(None)
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _deliver(self) -> None:
        while (event := self._events.get()) is not None:
            for listener in list(self._listeners.values()):
                for wanted in (event.type, UPDATED):
                    if wanted in listener.event_types:
                        self._call(listener, event, wanted)

    @staticmethod
    def _call(listener: Listener, event: AssessmentEventMessage, as_type: str) -> None:
        shown = event if as_type == event.type else event.model_copy(update={"type": as_type})
        try:
            listener.handler(shown)
        except Exception:
            logger.exception("event_handler_failed: %s %s", as_type, event.assessment_id)
