"""EventEmitterBackend: the legacy system as it was, in-process and in memory.

Every change is emitted by name through the old ``AssessmentEventEmitter``
(``emitting.EventEmitter``: ``on``/``off``/``emit``), and nothing is persisted: the
assessments live in this process's memory and are gone when it stops.
Unlike the old system it keeps one state machine (the store's transition table), so
its answers mean what the store's mean.

Assessments run with the store's handlers (``handler(ctx) -> dict``, the same
plug-ins) on a small thread pool as soon as they are created, or, with
``autostart=False``, when :meth:`run_pending` is called (tests, tools that drive them
by hand). Time limits are not enforced here, as they were not by the old system.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from assessment_store import policy
from assessment_store.config import Settings, get_settings
from assessment_store.creation import check_runnable
from assessment_store.errors import (
    AssessmentCancelledError,
    AssessmentConflictError,
    AssessmentNotFoundError,
    InvalidInputError,
    InvalidStateTransitionError,
    StoreUnavailableError,
    UnknownAssessmentTypeError,
)
from assessment_store.events import EVENT_TYPES as EVENT_NAMES
from assessment_store.events import AssessmentEventMessage, EventHandler
from assessment_store.handlers.registry import HandlerRegistry
from assessment_store.migration.emitting import EventEmitter, Listener
from assessment_store.migration.legacy import LegacyCounts
from assessment_store.models import Assessment, AssessmentRequest, utc_now
from assessment_store.outages import one_line
from assessment_store.states import TRANSITIONS, AssessmentEvent, AssessmentState
from assessment_store.waiting import WaitLoop

logger = logging.getLogger("assessment_store.migration.legacy")
IN_FLIGHT = (AssessmentState.PENDING, AssessmentState.PROCESSING)


class Run:
    """A running legacy assessment as its handler sees it (a HandlerContext)."""

    def __init__(self, backend: EventEmitterBackend, current: Assessment) -> None:
        self._backend = backend
        self.assessment_id = current.assessment_id
        self.request = current.request_data
        self.attempt = 1
        self.timeout_seconds = policy.attempt_timeout_seconds(
            self.request.requested_timeout_seconds, backend.settings
        )
        self.settings = backend.settings
        self._deadline = time.monotonic() + self.timeout_seconds

    @property
    def remaining_seconds(self) -> float:
        return max(0.0, self._deadline - time.monotonic())

    def report_progress(self, percent: int, message: str | None = None) -> None:
        self._backend.report_progress(self.assessment_id, percent, message)


class EventEmitterBackend:
    """The in-process legacy backend (see the module docstring)."""

    name = "event-emitter"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        handlers: HandlerRegistry | None = None,
        max_workers: int = 4,
        autostart: bool = True,
        keep_finished: int = 10_000,
    ) -> None:
        self.settings = settings or get_settings()
        self.handlers = handlers or HandlerRegistry.from_setting(self.settings.handlers)
        self._max_workers = max_workers
        self._autostart = autostart
        self._keep_finished = keep_finished
        self._changed = threading.Condition()
        self._entries: dict[str, Assessment] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._waiting: deque[str] = deque()  # created, not yet handed to a runner
        self.events = EventEmitter()
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    # -- the old emitter's interface ---------------------------------------------

    def on(self, event_types: Sequence[str], handler: EventHandler) -> Listener:
        """Call ``handler`` for every event of ``event_types`` until ``off``."""
        return self.events.on(event_types, handler)

    def off(self, subscription_id: str) -> bool:
        return self.events.off(subscription_id)

    def emit(self, event: AssessmentEventMessage) -> None:
        self.events.emit(event)

    # -- LegacyBackend -----------------------------------------------------------

    def subscribe(self, event_types: Sequence[str], handler: EventHandler) -> Listener:
        return self.on(event_types, handler)

    def create_assessment(
        self, assessment_id: str, request: AssessmentRequest, *, created_by: str
    ) -> str:
        if request.assessment_type not in self.handlers:
            raise UnknownAssessmentTypeError(request.assessment_type, self.handlers.types())
        check_runnable(request)
        stored = request.model_copy(update={"id": assessment_id})
        now = utc_now()
        fresh = Assessment(
            assessment_id=assessment_id,
            state=AssessmentState.PENDING,
            version=1,
            progress=0,
            message=None,
            priority=request.priority,
            assessment_type=request.assessment_type,
            server_name=request.server_name,
            source=request.source,
            created_by=created_by,
            request_data=stored,
            result_data=None,
            error_message=None,
            retry_count=0,
            next_retry_at=None,
            worker_id=None,
            created_at=now,
            updated_at=now,
            started_at=None,
            completed_at=None,
        )
        with self._changed:
            if self._closed:
                raise StoreUnavailableError("the legacy backend is closed")
            existing = self._entries.get(assessment_id)
            if existing is not None:
                if existing.created_by != created_by:
                    raise AssessmentConflictError(assessment_id, taken=True)
                if existing.request_data.identity() != stored.identity():
                    raise AssessmentConflictError(assessment_id)
                return assessment_id
            self._entries[assessment_id] = fresh
            self._publish(fresh, AssessmentEvent.CREATE, None, created_by, "created")
            if self._autostart:
                self._pool().submit(self._run, assessment_id)
            else:
                self._waiting.append(assessment_id)
        return assessment_id

    def holds(self, assessment_id: str) -> bool:
        return assessment_id in self._entries

    def get_state(self, assessment_id: str) -> Assessment:
        current = self._entries.get(assessment_id)
        if current is None:
            raise AssessmentNotFoundError(assessment_id)
        return current

    def wait_for_completion(self, assessment_id: str, timeout: float = 30.0) -> Assessment:
        plan = WaitLoop(assessment_id, timeout)
        with self._changed:
            while True:
                current = self.get_state(assessment_id)
                pause = plan.pause(current)
                if pause is None:
                    return current
                self._changed.wait(pause)

    def cancel_assessment(self, assessment_id: str, reason: str | None = None) -> Assessment:
        text = "cancelled" + (f": {reason}" if reason else "")
        return self._change(assessment_id, AssessmentEvent.CANCEL, "system", text)

    def counts(self) -> LegacyCounts:
        with self._changed:
            by_state = Counter(a.state.value for a in self._entries.values())
        in_flight = sum(by_state.get(state.value, 0) for state in IN_FLIGHT)
        return LegacyCounts(sum(by_state.values()), in_flight, dict(sorted(by_state.items())))

    def run_pending(self, limit: int | None = None) -> int:
        """Run waiting assessments (``autostart=False``) here and now, oldest first;
        returns how many ran."""
        ran = 0
        while limit is None or ran < limit:
            with self._changed:
                if not self._waiting:
                    return ran
                assessment_id = self._waiting.popleft()
            self._run(assessment_id)
            ran += 1
        return ran

    def drain(self, timeout: float) -> bool:
        """Wait until nothing is in flight (True), or ``timeout`` seconds (False)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.counts().in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking work; let what is in flight finish for up to ``timeout`` seconds.
        Whatever is still unfinished then is lost (the legacy side keeps nothing)."""
        with self._changed:
            self._closed = True
        if not self._autostart or not self.drain(timeout):
            lost = self.counts().in_flight
            if lost:
                logger.warning("legacy_abandoned: %d assessment(s) in flight lost at close", lost)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self.events.close(timeout)

    # -- running -------------------------------------------------------------------

    def report_progress(self, assessment_id: str, percent: int, message: str | None) -> None:
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise InvalidInputError("progress", "must be a whole number from 0 to 100", percent)
        if self.get_state(assessment_id).state is AssessmentState.CANCELLED:
            raise AssessmentCancelledError(assessment_id)
        reason = f"progress {percent}%" + (f": {message}" if message else "")
        try:
            self._change(
                assessment_id,
                AssessmentEvent.PROGRESS,
                self._worker(),
                reason,
                progress=percent,
                message=message,
            )
        except InvalidStateTransitionError:
            raise AssessmentCancelledError(assessment_id) from None

    def _run(self, assessment_id: str) -> None:
        worker = self._worker()
        try:
            started = self._change(
                assessment_id,
                AssessmentEvent.START,
                worker,
                f"claimed by {worker}",
                started_at=utc_now(),
                worker_id=worker,
            )
        except (InvalidStateTransitionError, AssessmentNotFoundError):
            return  # cancelled before it started
        try:
            result: Any = self.handlers.resolve(started.assessment_type)(Run(self, started))
            if not isinstance(result, dict):
                raise TypeError(f"the handler returned {type(result).__name__}, not a dict")
        except AssessmentCancelledError:
            return
        except Exception as exc:
            self._end(assessment_id, AssessmentEvent.FAIL, worker, one_line(exc))
            return
        self._end(assessment_id, AssessmentEvent.COMPLETE, worker, None, result)

    def _end(
        self,
        assessment_id: str,
        event: AssessmentEvent,
        worker: str,
        error: str | None,
        result: dict[str, Any] | None = None,
    ) -> None:
        reason = "completed" if error is None else f"failed: {error}"
        # Cancelled meanwhile: a cancelled assessment stays cancelled.
        with contextlib.suppress(InvalidStateTransitionError):
            self._change(
                assessment_id,
                event,
                worker,
                reason,
                progress=100 if error is None else self.get_state(assessment_id).progress,
                result_data=result,
                error_message=error,
                completed_at=utc_now(),
            )

    def _change(
        self,
        assessment_id: str,
        event: AssessmentEvent,
        actor: str,
        reason: str,
        **values: Any,
    ) -> Assessment:
        with self._changed:
            current = self.get_state(assessment_id)
            target = TRANSITIONS.get((current.state, event))
            if target is None:
                goal = {"cancel": "cancelled", "complete": "completed", "fail": "failed"}
                raise InvalidStateTransitionError(
                    assessment_id, current.state.value, goal.get(event.value, event.value)
                )
            if target is AssessmentState.CANCELLED:
                values.setdefault("completed_at", utc_now())
            changed = current.model_copy(
                update={
                    **values,
                    "state": target,
                    "version": current.version + 1,
                    "updated_at": utc_now(),
                }
            )
            self._entries[assessment_id] = changed
            self._publish(changed, event, current.state, actor, reason)
            if changed.is_finished:
                self._forget_old_finished(assessment_id)
            self._changed.notify_all()
            return changed

    def _publish(
        self,
        current: Assessment,
        event: AssessmentEvent,
        old_state: AssessmentState | None,
        actor: str,
        reason: str,
    ) -> None:
        self.emit(
            AssessmentEventMessage(
                type=EVENT_NAMES[event.value],
                assessment_id=current.assessment_id,
                version=current.version,
                old_state=old_state,
                new_state=current.state,
                changed_by=actor,
                reason=reason,
                created_at=current.updated_at,
            )
        )

    def _forget_old_finished(self, assessment_id: str) -> None:
        self._finished[assessment_id] = None
        while len(self._finished) > self._keep_finished:
            oldest, _ = self._finished.popitem(last=False)
            self._entries.pop(oldest, None)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix="legacy-assessment"
            )
        return self._executor

    @staticmethod
    def _worker() -> str:
        return f"legacy-{os.getpid()}-{threading.current_thread().name}"
