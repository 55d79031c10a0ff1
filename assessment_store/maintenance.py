"""Scheduled maintenance: rescue lost attempts, re-dispatch, retry, retention.

Each job is safe to run from two places at once (two beats, a beat and an operator):
candidates are claimed with ``FOR UPDATE SKIP LOCKED`` or the job holds a
transaction-level advisory lock, and every change is a transition like any other
(``changes.transition``: the one engine, version-guarded, audited), applied to a whole
batch at once. Publishing happens after commit; a lost publish is re-dispatched later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, RowMapping

from assessment_store import at_rest, changes, metrics
from assessment_store.bootstrap import Runtime
from assessment_store.db import sweeps
from assessment_store.db.transitions import Step
from assessment_store.dispatch import dispatch_item
from assessment_store.inputs import check_count, check_positive
from assessment_store.models import AssessmentRequest
from assessment_store.states import AssessmentEvent, AssessmentState

ProgressCallback = Callable[[int], None]
RETRY_BATCH_SIZE = 1000
RESCUE_BATCH_SIZE = 500
SCHEDULED_RETRY_ACTOR = "maintenance.retry"
BATCH_RETRY_ACTOR = "batch-retry"


@dataclass(frozen=True)
class JobReport:
    """What one run of a job did."""

    job: str
    affected: int
    skipped: bool = False  # another runner held the job's lock
    detail: dict[str, int] = field(default_factory=dict)


def rescue_lost_attempts(
    runtime: Runtime, *, max_batches: int = 20, progress: ProgressCallback | None = None
) -> JobReport:
    """processing -> failed ("worker lost") for every attempt whose lease expired, with a
    retry scheduled by the policy while retries remain."""
    settings = runtime.settings
    rescued = 0
    for _ in range(max_batches):
        claimed = 0

        def plan(conn: Connection) -> list[Step]:
            nonlocal claimed
            lost = sweeps.claim_lost_attempts(conn, RESCUE_BATCH_SIZE)
            claimed = len(lost)
            steps = []
            for row in lost:
                error = (
                    f"worker lost: {row['lease_worker'] or 'unknown worker'} stopped renewing "
                    f"its lease (expired {row['lease_expires_at']:%Y-%m-%dT%H:%M:%S%z})"
                )
                values = changes.failure_values(
                    settings, row["retry_count"], error, permanent=False
                )
                steps.append(
                    Step(
                        row["assessment_id"],
                        AssessmentState.PROCESSING,
                        changes.RESCUE_ACTOR,
                        f"rescued: {error}",
                        expected_version=row["version"],
                        values=values,
                    )
                )
            return steps

        done = changes.transition(runtime, AssessmentEvent.FAIL, plan)
        rescued += len(done)
        metrics.ERRORS.labels("worker_lost").inc(len(done))
        if progress is not None:
            progress(rescued)
        if claimed < RESCUE_BATCH_SIZE:
            break
    return JobReport("rescue", rescued)


def redispatch_stale_pending(
    runtime: Runtime, *, max_batches: int = 20, progress: ProgressCallback | None = None
) -> JobReport:
    """Publish again the pending assessments that no worker picked up in time (Redis
    lost the message, a publish failed, the broker was flushed or restarted)."""
    settings = runtime.settings
    keys = runtime.keys
    published = 0
    for _ in range(max_batches):

        def claim(conn: Connection) -> list[RowMapping] | None:
            if not sweeps.try_job_lock(conn, "redispatch"):
                return None
            return sweeps.claim_stale_pending(
                conn,
                after_seconds=settings.redispatch_after_seconds,
                limit=settings.redispatch_batch_size,
            )

        rows = runtime.transact(claim)
        if rows is None:
            return JobReport("redispatch", published, skipped=True)
        runtime.publish(
            [
                dispatch_item(
                    row["assessment_id"],
                    row["priority"],
                    AssessmentRequest.model_validate(
                        at_rest.open_request(keys, row["assessment_id"], row["request_data"])
                    ),
                    settings,
                )
                for row in rows
            ]
        )
        published += len(rows)
        if progress is not None:
            progress(published)
        if len(rows) < settings.redispatch_batch_size:
            break
    return JobReport("redispatch", published)


def retry_failures(
    runtime: Runtime,
    *,
    max_retries: int,
    due_only: bool,
    progress: ProgressCallback | None = None,
    max_batches: int | None = None,
) -> list[str]:
    """failed -> pending (retry_count + 1, audited) in batches, publishing each batch
    after its commit. ``due_only``: only failures whose next_retry_at has passed (the
    scheduled retry); otherwise every failure with retries left (an operator's)."""
    actor = SCHEDULED_RETRY_ACTOR if due_only else BATCH_RETRY_ACTOR
    label = "scheduled retry" if due_only else "batch retry"
    retried: list[str] = []
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        claimed = 0

        def plan(conn: Connection) -> list[Step]:
            nonlocal claimed
            rows = sweeps.claim_failures(
                conn, max_retries=max_retries, due_only=due_only, limit=RETRY_BATCH_SIZE
            )
            claimed = len(rows)
            return [
                Step(
                    row["assessment_id"],
                    AssessmentState.FAILED,
                    actor,
                    changes.retry_reason(label, row["retry_count"]),
                    expected_version=row["version"],
                )
                for row in rows
            ]

        done = changes.transition(runtime, AssessmentEvent.RETRY, plan, fixed=changes.RETRY_RESETS)
        runtime.publish(
            [
                dispatch_item(a.assessment_id, a.priority, a.request_data, runtime.settings)
                for a in done
            ]
        )
        retried.extend(a.assessment_id for a in done)
        if progress is not None:
            progress(len(retried))
        if claimed < RETRY_BATCH_SIZE:
            break
    return retried


def delete_finished(
    runtime: Runtime,
    retention_days: float | None,
    *,
    batch_size: int | None = None,
    max_batches: int | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[int, int]:
    """Delete finished assessments older than ``retention_days`` with their audit rows,
    ``batch_size`` per short transaction; (assessments, audit rows) deleted."""
    settings = runtime.settings
    days = check_positive(
        "retentionDays", settings.retention_days if retention_days is None else retention_days
    )
    size = check_count("batchSize", batch_size or settings.cleanup_batch_size) or 1
    cutoff = datetime.now(UTC) - timedelta(days=days)
    deleted = audit_rows = batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        ids, audits = runtime.transact(
            lambda conn: sweeps.delete_finished_before(conn, cutoff, size)
        )
        if runtime.cache is not None:
            runtime.cache.forget(ids)
        deleted += len(ids)
        audit_rows += audits
        if progress is not None:
            progress(deleted)
        if len(ids) < size:
            break
    return deleted, audit_rows


def retry_due_failures(runtime: Runtime, *, progress: ProgressCallback | None = None) -> JobReport:
    """failed -> pending for failures whose next_retry_at has passed (and publish)."""
    retried = retry_failures(
        runtime, max_retries=runtime.settings.max_retries, due_only=True, progress=progress
    )
    return JobReport("retry", len(retried))


def apply_retention(
    runtime: Runtime, *, max_batches: int = 20, progress: ProgressCallback | None = None
) -> JobReport:
    """Delete finished assessments older than RETENTION_DAYS, a bounded amount per run."""
    deleted, audit_rows = delete_finished(runtime, None, max_batches=max_batches, progress=progress)
    return JobReport("retention", deleted, detail={"auditRows": audit_rows})


JOBS: dict[str, Callable[..., JobReport]] = {
    "rescue": rescue_lost_attempts,
    "redispatch": redispatch_stale_pending,
    "retry": retry_due_failures,
    "retention": apply_retention,
}
