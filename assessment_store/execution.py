"""Running one attempt of an assessment: claim, lease, handler, outcome.

Independent of Celery (the task in ``workers.tasks`` is a thin wrapper), so every
path is testable in-process. The claim is a compare-and-set: a duplicate delivery
finds nothing to claim. Every later write of the attempt (progress, complete, fail)
is guarded by the attempt itself (this worker, this retry count), so a cancelled
assessment stops at the handler's next progress report, a late result never
overwrites a cancellation or a rescue, and a write interrupted by a time limit never
leaves the attempt holding a stale version.

A time limit (``timeout_exceptions``: Celery's SoftTimeLimitExceeded) may strike
anywhere: before or during the claim, in the handler, in a progress write, while
completing. Wherever it lands, :func:`_timed_out` looks at the row and fails the
attempt with an error naming the limit (claiming it first if the claim never
committed), so it is retried like any failure.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from assessment_store import at_rest, changes, metrics, policy
from assessment_store.bootstrap import Runtime
from assessment_store.config import Settings
from assessment_store.db import repository
from assessment_store.db.transitions import Attempt
from assessment_store.errors import (
    AssessmentCancelledError,
    AssessmentNotFoundError,
    AssessmentStoreError,
    AttemptSupersededError,
    InvalidStateTransitionError,
    PermanentAssessmentError,
    VersionConflictError,
)
from assessment_store.lease import Lease
from assessment_store.models import Assessment, AssessmentRequest
from assessment_store.states import AssessmentState

logger = logging.getLogger("assessment_store.execution")

# The row moved on under the attempt: its outcome is dropped, not forced.
NOT_OURS = (VersionConflictError, InvalidStateTransitionError, AttemptSupersededError)


class Outcome(StrEnum):
    """How an attempt ended, from this worker's point of view."""

    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"  # failed, for exceeding its time limit
    CANCELLED = "cancelled"
    DUPLICATE = "duplicate"  # nothing to claim: another delivery owns or finished it
    SUPERSEDED = "superseded"  # claimed, but the row moved on (rescued) before the end


@dataclass(frozen=True)
class Ending:
    """How an attempt ended and, for one that failed (``FAILED``, ``TIMED_OUT``), the
    error recorded in PostgreSQL: what the worker reports to Celery (and so Flower)."""

    outcome: Outcome
    error: str | None = None


def timeout_message(timeout_seconds: float) -> str:
    """The error of an attempt that exceeded its time limit."""
    return f"timed out: the attempt exceeded its {timeout_seconds:g}s time limit"


@dataclass
class AttemptContext:
    """The running attempt; what its handler sees (``handlers.context.HandlerContext``)."""

    runtime: Runtime
    assessment_id: str
    request: AssessmentRequest
    attempt: int
    timeout_seconds: float
    guard: Attempt
    lease: Lease | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def remaining_seconds(self) -> float:
        return max(0.0, self.timeout_seconds - (time.monotonic() - self.started))

    def report_progress(self, percent: int, message: str | None = None) -> None:
        if self.lease is not None and self.lease.lost:
            # Rescued while we were busy: another attempt may be running; stop here.
            raise self.why_not_ours()
        try:
            changes.report_progress(
                self.runtime,
                self.assessment_id,
                percent,
                message,
                changed_by=self.guard.worker_id,
                attempt=self.guard,
            )
        except NOT_OURS:
            raise self.why_not_ours() from None

    def why_not_ours(self) -> AssessmentStoreError:
        current = _fresh(self.runtime, self.assessment_id)
        if current is not None and current.state is AssessmentState.CANCELLED:
            return AssessmentCancelledError(self.assessment_id)
        where = "gone" if current is None else f"{current.state.value} (v{current.version})"
        return AttemptSupersededError(
            f"assessment {self.assessment_id!r} moved on to {where}; this attempt no longer owns it"
        )


def run_attempt(
    runtime: Runtime,
    assessment_id: str,
    worker_id: str,
    *,
    timeout_exceptions: tuple[type[BaseException], ...] = (),
) -> Outcome:
    """Claim and run one attempt of ``assessment_id``; never raises for expected ends."""
    return run_attempt_ending(
        runtime, assessment_id, worker_id, timeout_exceptions=timeout_exceptions
    ).outcome


def run_attempt_ending(
    runtime: Runtime,
    assessment_id: str,
    worker_id: str,
    *,
    timeout_exceptions: tuple[type[BaseException], ...] = (),
) -> Ending:
    """:func:`run_attempt`, with the error of a failed attempt."""
    started = time.monotonic()
    claimed: Assessment | None = None
    try:
        try:
            claimed = changes.claim(runtime, assessment_id, worker_id)
        except (InvalidStateTransitionError, VersionConflictError) as exc:
            logger.info("duplicate_delivery: %s (%s)", assessment_id, exc)
            return Ending(Outcome.DUPLICATE)
        except AssessmentNotFoundError:
            logger.info("assessment_gone: %s (deleted before it ran)", assessment_id)
            return Ending(Outcome.DUPLICATE)
        if claimed.retry_count == 0 and claimed.started_at is not None:
            waited = (claimed.started_at - claimed.created_at).total_seconds()
            metrics.QUEUE_WAIT_SECONDS.labels(claimed.assessment_type).observe(max(0.0, waited))
        ending = _run_claimed(runtime, claimed, worker_id, timeout_exceptions)
    except timeout_exceptions:
        ending = record_timeout(runtime, assessment_id, worker_id)
    if claimed is not None:
        metrics.PROCESSING_SECONDS.labels(claimed.assessment_type, ending.outcome.value).observe(
            time.monotonic() - started
        )
    return ending


def _run_claimed(
    runtime: Runtime,
    claimed: Assessment,
    worker_id: str,
    timeout_exceptions: tuple[type[BaseException], ...],
) -> Ending:
    request = claimed.request_data
    guard = Attempt(worker_id, claimed.retry_count)
    assessment_id = claimed.assessment_id
    settings = runtime.settings
    lease = runtime.leases.hold(assessment_id, worker_id)
    ctx = AttemptContext(
        runtime=runtime,
        assessment_id=assessment_id,
        request=request,
        attempt=claimed.retry_count + 1,
        timeout_seconds=policy.attempt_timeout_seconds(request.requested_timeout_seconds, settings),
        guard=guard,
        lease=lease,
    )
    # Everything the attempt writes, its outcome and a time limit's record included,
    # happens while the lease is renewed: a slow write on a busy database must not let
    # the lease run out under a live worker (the rescue would fail it as lost).
    with lease:
        try:
            return _run_holding(ctx, claimed.assessment_type, timeout_exceptions)
        except timeout_exceptions:
            return record_timeout(runtime, assessment_id, worker_id)


def _run_holding(
    ctx: AttemptContext,
    assessment_type: str,
    timeout_exceptions: tuple[type[BaseException], ...],
) -> Ending:
    """Run the handler of the claimed attempt ``ctx`` and record its outcome."""
    runtime, assessment_id, guard = ctx.runtime, ctx.assessment_id, ctx.guard
    try:
        handler = runtime.handlers.resolve(assessment_type)
        result: Any = handler(ctx)
    except timeout_exceptions:
        raise  # recorded by the caller, wherever the limit struck
    except AssessmentCancelledError:
        logger.info("attempt_cancelled: %s", assessment_id)
        return Ending(Outcome.CANCELLED)
    except AttemptSupersededError as exc:
        logger.warning("attempt_superseded: %s", exc)
        return Ending(Outcome.SUPERSEDED)
    except PermanentAssessmentError as exc:
        metrics.ERRORS.labels("permanent").inc()
        return _fail(ctx, _describe(exc), permanent=True)
    except Exception as exc:
        # One line per failed attempt (its error is recorded in PostgreSQL and shown
        # by Flower); the handler's traceback with --loglevel DEBUG.
        logger.warning(
            "attempt_failed: %s: %s",
            assessment_id,
            _describe(exc),
            exc_info=logger.isEnabledFor(logging.DEBUG),
        )
        metrics.ERRORS.labels(type(exc).__name__).inc()
        return _fail(ctx, _describe(exc), permanent=False)
    if not isinstance(result, dict):
        kind = type(result).__name__
        return _fail(ctx, f"handler for {assessment_type!r} returned {kind}, not a dict", True)
    try:
        changes.complete(runtime, assessment_id, result, changed_by=guard.worker_id, attempt=guard)
    except NOT_OURS:
        return _discarded(ctx)
    return Ending(Outcome.COMPLETED)


def _fail(ctx: AttemptContext, error: str, permanent: bool) -> Ending:
    try:
        failed = changes.fail(
            ctx.runtime,
            ctx.assessment_id,
            error,
            permanent=permanent,
            changed_by=ctx.guard.worker_id,
            attempt=ctx.guard,
        )
    except NOT_OURS:
        return _discarded(ctx)
    return Ending(Outcome.FAILED, failed.error_message or error)


def _discarded(ctx: AttemptContext) -> Ending:
    reason = ctx.why_not_ours()
    logger.info("outcome_discarded: %s", reason)
    if isinstance(reason, AssessmentCancelledError):
        return Ending(Outcome.CANCELLED)
    return Ending(Outcome.SUPERSEDED)


def record_timeout(runtime: Runtime, assessment_id: str, worker_id: str) -> Ending:
    """The time limit struck somewhere in the attempt: fail it, naming the limit.

    The row says how far the attempt got: still pending (the claim never committed)
    is claimed first, so the failure is an ordinary, audited attempt that is retried
    by the policy (and ends a dead letter when retries run out), never a message
    re-published forever; processing by this worker is failed; anything else already
    ended (or belongs to someone else) and is left alone.
    """
    metrics.ERRORS.labels("timeout").inc()
    current = _fresh(runtime, assessment_id)
    if current is not None and current.state is AssessmentState.PENDING:
        try:
            current = changes.claim(runtime, assessment_id, worker_id)
        except (InvalidStateTransitionError, VersionConflictError):
            current = _fresh(runtime, assessment_id)
    if current is None:
        return Ending(Outcome.DUPLICATE)
    if current.state is not AssessmentState.PROCESSING or current.worker_id != worker_id:
        logger.info("timeout_after_end: %s is %s", assessment_id, current.state.value)
        return Ending(Outcome.SUPERSEDED)
    error = _fail_timed_out(runtime, current, worker_id)
    if error is None:
        return Ending(Outcome.SUPERSEDED)
    return Ending(Outcome.TIMED_OUT, error)


def fail_overrun_attempt(runtime: Runtime, assessment_id: str, hostname: str) -> bool:
    """Fail, as timed out, an attempt of ``assessment_id`` that a worker on
    ``hostname`` ran past its hard time limit (its child was killed for it, so nothing
    else will record the failure before the lease runs out). True if it did."""
    current = _fresh(runtime, assessment_id)
    if (
        current is None
        or current.state is not AssessmentState.PROCESSING
        or not (current.worker_id or "").startswith(f"{hostname}:")
        or current.started_at is None
    ):
        return False
    ran = time.time() - current.started_at.timestamp()
    if ran < _timeout_of(runtime, current):
        return False  # a later attempt, started after the killed one
    metrics.ERRORS.labels("timeout").inc()
    return _fail_timed_out(runtime, current, current.worker_id or "") is not None


def _timeout_of(runtime: Runtime, assessment: Assessment) -> float:
    return policy.attempt_timeout_seconds(
        assessment.request_data.requested_timeout_seconds, runtime.settings
    )


def _fail_timed_out(runtime: Runtime, current: Assessment, worker_id: str) -> str | None:
    """Fail ``current``'s running attempt (``worker_id``'s) as timed out: the error
    recorded, or None when it moved on meanwhile."""
    timeout = _timeout_of(runtime, current)
    try:
        failed = changes.fail(
            runtime,
            current.assessment_id,
            timeout_message(timeout),
            permanent=False,
            changed_by=worker_id,
            attempt=Attempt(worker_id, current.retry_count),
        )
    except NOT_OURS:
        return None
    logger.warning("attempt_timed_out: %s after %gs", current.assessment_id, timeout)
    return failed.error_message or timeout_message(timeout)


def _fresh(runtime: Runtime, assessment_id: str) -> Assessment | None:
    row = runtime.read(lambda conn: repository.fetch_assessment(conn, assessment_id))
    return None if row is None else changes.to_assessment(at_rest.open_row(runtime.keys, row))


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
