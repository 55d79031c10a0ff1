"""Running one attempt of an assessment: claim, heartbeat, handler, outcome.

Independent of Celery (the task in ``workers.tasks`` is a thin wrapper), so every
path is testable in-process. Each step is a compare-and-set on the assessment's
version: a duplicate delivery finds nothing to claim, a cancelled assessment stops at
the handler's next progress report, and a late result can never overwrite a
cancellation or a rescue.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from assessment_store import metrics
from assessment_store.config import Settings
from assessment_store.errors import (
    AssessmentCancelledError,
    AssessmentNotFoundError,
    AssessmentStoreError,
    InvalidStateTransitionError,
    PermanentAssessmentError,
    VersionConflictError,
)
from assessment_store.lease import Heartbeat
from assessment_store.models import Assessment, AssessmentRequest
from assessment_store.service import AssessmentStore
from assessment_store.states import AssessmentState

logger = logging.getLogger("assessment_store.execution")

MAX_ERROR_MESSAGE_CHARS = 2000


class Outcome(StrEnum):
    """How an attempt ended, from this worker's point of view."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DUPLICATE = "duplicate"  # nothing to claim: another delivery owns or finished it
    SUPERSEDED = "superseded"  # claimed, but the row moved on (rescued) before the end


class AttemptSupersededError(AssessmentStoreError):
    """Raised inside a handler when its attempt no longer owns the assessment."""

    code = "ATTEMPT_SUPERSEDED"
    http_status = 409


@dataclass
class HandlerContext:
    """What a handler gets: ``handler(ctx) -> dict``."""

    assessment_id: str
    request: AssessmentRequest
    attempt: int
    timeout_seconds: float
    _store: AssessmentStore
    _worker_id: str
    _version: int
    _started: float
    _lease: Heartbeat | None = None

    @property
    def settings(self) -> Settings:
        """The store's settings (handler configuration such as the compliance server)."""
        return self._store.settings

    @property
    def remaining_seconds(self) -> float:
        """Time left before the attempt's time limit."""
        return max(0.0, self.timeout_seconds - (time.monotonic() - self._started))

    def report_progress(self, percent: int, message: str | None = None) -> None:
        """Record progress (0-100). Raises AssessmentCancelledError once the assessment
        has been cancelled, so the handler stops and its result is discarded."""
        if self._lease is not None and self._lease.lost.is_set():
            # Rescued while we were busy: another attempt may be running; stop here.
            raise self._why_not_ours()
        try:
            updated = self._store.update_progress(
                self.assessment_id,
                percent,
                message,
                expected_version=self._version,
                changed_by=self._worker_id,
            )
        except (VersionConflictError, InvalidStateTransitionError):
            raise self._why_not_ours() from None
        self._version = updated.version

    def _why_not_ours(self) -> AssessmentStoreError:
        current = self._store.get_fresh_state(self.assessment_id)
        if current.state is AssessmentState.CANCELLED:
            return AssessmentCancelledError(self.assessment_id)
        return AttemptSupersededError(
            f"assessment {self.assessment_id!r} moved on to {current.state.value} "
            f"(version {current.version}); this attempt no longer owns it"
        )


def run_attempt(
    store: AssessmentStore,
    assessment_id: str,
    worker_id: str,
    *,
    timeout_exceptions: tuple[type[BaseException], ...] = (),
) -> Outcome:
    """Claim and run one attempt of ``assessment_id``; never raises for expected ends."""
    try:
        claimed = store.start_processing(assessment_id, worker_id)
    except (InvalidStateTransitionError, VersionConflictError) as exc:
        logger.info("duplicate_delivery: %s (%s)", assessment_id, exc)
        return Outcome.DUPLICATE
    except AssessmentNotFoundError:
        logger.info("assessment_gone: %s (deleted before it ran)", assessment_id)
        return Outcome.DUPLICATE
    if claimed.retry_count == 0 and claimed.started_at is not None:
        waited = (claimed.started_at - claimed.created_at).total_seconds()
        metrics.QUEUE_WAIT_SECONDS.labels(claimed.assessment_type).observe(max(0.0, waited))
    started = time.monotonic()
    outcome = _run_claimed(store, claimed, worker_id, timeout_exceptions)
    metrics.PROCESSING_SECONDS.labels(claimed.assessment_type, outcome.value).observe(
        time.monotonic() - started
    )
    return outcome


def _run_claimed(
    store: AssessmentStore,
    claimed: Assessment,
    worker_id: str,
    timeout_exceptions: tuple[type[BaseException], ...],
) -> Outcome:
    request = claimed.request_data
    lease = Heartbeat(
        store.engines.primary, claimed.assessment_id, worker_id, store.settings.lease_seconds
    )
    ctx = HandlerContext(
        assessment_id=claimed.assessment_id,
        request=request,
        attempt=claimed.retry_count + 1,
        timeout_seconds=request.attempt_timeout_seconds(store.settings.default_timeout_seconds),
        _store=store,
        _worker_id=worker_id,
        _version=claimed.version,
        _started=time.monotonic(),
        _lease=lease,
    )
    with lease:
        try:
            handler = store.handlers.resolve(claimed.assessment_type)
            result: Any = handler(ctx)
        except AssessmentCancelledError:
            logger.info("attempt_cancelled: %s", claimed.assessment_id)
            return Outcome.CANCELLED
        except AttemptSupersededError as exc:
            logger.warning("attempt_superseded: %s", exc)
            return Outcome.SUPERSEDED
        except PermanentAssessmentError as exc:
            metrics.ERRORS.labels("permanent").inc()
            return _fail(store, ctx, worker_id, _describe(exc), permanent=True)
        except timeout_exceptions:
            metrics.ERRORS.labels("timeout").inc()
            return _fail(
                store,
                ctx,
                worker_id,
                f"timed out: the attempt exceeded its {ctx.timeout_seconds:g}s time limit",
                permanent=False,
            )
        except Exception as exc:
            logger.warning("attempt_failed: %s", claimed.assessment_id, exc_info=True)
            metrics.ERRORS.labels(type(exc).__name__).inc()
            return _fail(store, ctx, worker_id, _describe(exc), permanent=False)
    if not isinstance(result, dict):
        return _fail(
            store,
            ctx,
            worker_id,
            f"handler for {claimed.assessment_type!r} returned {type(result).__name__}, not a dict",
            permanent=True,
        )
    try:
        store.complete_assessment(
            claimed.assessment_id, result, expected_version=ctx._version, changed_by=worker_id
        )
    except (VersionConflictError, InvalidStateTransitionError):
        return _discarded(ctx)
    return Outcome.COMPLETED


def _fail(
    store: AssessmentStore, ctx: HandlerContext, worker_id: str, error: str, *, permanent: bool
) -> Outcome:
    try:
        store.fail_assessment(
            ctx.assessment_id,
            error[:MAX_ERROR_MESSAGE_CHARS],
            permanent=permanent,
            expected_version=ctx._version,
            changed_by=worker_id,
        )
    except (VersionConflictError, InvalidStateTransitionError):
        return _discarded(ctx)
    return Outcome.FAILED


def _discarded(ctx: HandlerContext) -> Outcome:
    """The row moved on while the handler ran: its outcome is dropped, not forced."""
    reason = ctx._why_not_ours()
    logger.info("outcome_discarded: %s", reason)
    if isinstance(reason, AssessmentCancelledError):
        return Outcome.CANCELLED
    return Outcome.SUPERSEDED


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
