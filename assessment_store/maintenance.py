"""Scheduled maintenance: rescue lost attempts, re-dispatch, retry, retention.

Each job is safe to run from two places at once (two beats, a beat and an operator):
rows are claimed with ``FOR UPDATE SKIP LOCKED`` or the job holds a transaction-level
advisory lock, and every change is a compare-and-set on the row's version.
Publishing happens after commit; a lost publish is simply re-dispatched later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from assessment_store import metrics
from assessment_store.backoff import retry_delay_seconds
from assessment_store.db import sweeps
from assessment_store.inputs import check_count, check_positive

if TYPE_CHECKING:
    from assessment_store.service import AssessmentStore

ProgressCallback = Callable[[int], None]
RETRY_BATCH_SIZE = 1000

RESCUE_ACTOR = "maintenance.rescue"
RESCUE_BATCH_SIZE = 500


@dataclass(frozen=True)
class JobReport:
    """What one run of a job did."""

    job: str
    affected: int
    skipped: bool = False  # another runner held the job's lock
    detail: dict[str, int] = field(default_factory=dict)


def rescue_lost_attempts(
    store: AssessmentStore, *, max_batches: int = 20, progress: ProgressCallback | None = None
) -> JobReport:
    """processing -> failed ("worker lost") for every attempt whose lease expired, with a
    retry scheduled by the usual backoff while retries remain."""
    settings = store.settings
    rescued = 0
    for _ in range(max_batches):
        with store.transaction() as conn:
            lost = sweeps.claim_lost_attempts(conn, RESCUE_BATCH_SIZE)
            now = datetime.now(UTC)
            rows = []
            for row in lost:
                next_retry_at = None
                if row["retry_count"] < settings.max_retries:
                    delay = retry_delay_seconds(
                        row["retry_count"],
                        settings.retry_backoff_seconds,
                        settings.retry_backoff_max_seconds,
                    )
                    next_retry_at = now + timedelta(seconds=delay)
                error = (
                    f"worker lost: {row['lease_worker'] or 'unknown worker'} stopped renewing "
                    f"its lease (expired {row['lease_expires_at']:%Y-%m-%dT%H:%M:%S%z})"
                )
                rows.append((row["assessment_id"], row["version"], next_retry_at, error))
            done = sweeps.fail_lost_attempts(conn, rows, RESCUE_ACTOR)
        rescued += len(done)
        metrics.TRANSITIONS.labels("processing", "failed").inc(len(done))
        metrics.ERRORS.labels("worker_lost").inc(len(done))
        if progress is not None:
            progress(rescued)
        if len(lost) < RESCUE_BATCH_SIZE:
            break
    return JobReport("rescue", rescued)


def redispatch_stale_pending(
    store: AssessmentStore, *, max_batches: int = 20, progress: ProgressCallback | None = None
) -> JobReport:
    """Publish again the pending assessments that no worker picked up in time (Redis
    lost the message, a publish failed, the broker was flushed or restarted)."""
    settings = store.settings
    published = 0
    for _ in range(max_batches):
        with store.transaction() as conn:
            if not sweeps.try_job_lock(conn, "redispatch"):
                return JobReport("redispatch", published, skipped=True)
            rows = sweeps.claim_stale_pending(
                conn,
                after_seconds=settings.redispatch_after_seconds,
                limit=settings.redispatch_batch_size,
            )
        store.publish([store.dispatch_item(row) for row in rows])
        published += len(rows)
        if progress is not None:
            progress(published)
        if len(rows) < settings.redispatch_batch_size:
            break
    return JobReport("redispatch", published)


def retry_failures(
    store: AssessmentStore,
    *,
    max_retries: int,
    due_only: bool,
    progress: ProgressCallback | None = None,
    max_batches: int | None = None,
) -> list[str]:
    """failed -> pending (retry_count + 1, audited) in batches, publishing each batch
    after its commit. Rows are claimed with SKIP LOCKED: two runners split the work."""
    retried: list[str] = []
    batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        with store.transaction() as conn:
            rows = sweeps.retry_failed(
                conn,
                max_retries=max_retries,
                due_only=due_only,
                limit=RETRY_BATCH_SIZE,
                changed_by="maintenance.retry" if due_only else "batch-retry",
                change_reason="scheduled retry" if due_only else "batch retry",
            )
        store.publish([store.dispatch_item(row) for row in rows])
        metrics.TRANSITIONS.labels("failed", "pending").inc(len(rows))
        retried.extend(row["assessment_id"] for row in rows)
        if progress is not None:
            progress(len(retried))
        if len(rows) < RETRY_BATCH_SIZE:
            break
    return retried


def delete_finished(
    store: AssessmentStore,
    retention_days: float | None,
    *,
    batch_size: int | None = None,
    max_batches: int | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[int, int]:
    """Delete finished assessments older than ``retention_days`` with their audit rows,
    ``batch_size`` per short transaction; (assessments, audit rows) deleted."""
    settings = store.settings
    days = check_positive(
        "retentionDays", settings.retention_days if retention_days is None else retention_days
    )
    size = check_count("batchSize", batch_size or settings.cleanup_batch_size) or 1
    cutoff = datetime.now(UTC) - timedelta(days=days)
    deleted = audit_rows = batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        with store.transaction() as conn:
            ids, audits = sweeps.delete_finished_before(conn, cutoff, size)
        if store.cache is not None:
            store.cache.forget(ids)
        count = len(ids)
        deleted += count
        audit_rows += audits
        if progress is not None:
            progress(deleted)
        if count < size:
            break
    return deleted, audit_rows


def retry_due_failures(
    store: AssessmentStore, *, progress: ProgressCallback | None = None
) -> JobReport:
    """failed -> pending for failures whose next_retry_at has passed (and publish)."""
    retried = retry_failures(
        store, max_retries=store.settings.max_retries, due_only=True, progress=progress
    )
    return JobReport("retry", len(retried))


def apply_retention(
    store: AssessmentStore, *, max_batches: int = 20, progress: ProgressCallback | None = None
) -> JobReport:
    """Delete finished assessments older than RETENTION_DAYS, a bounded amount per run."""
    deleted, audit_rows = delete_finished(store, None, max_batches=max_batches, progress=progress)
    return JobReport("retention", deleted, detail={"auditRows": audit_rows})


JOBS: dict[str, Callable[..., JobReport]] = {
    "rescue": rescue_lost_attempts,
    "redispatch": redispatch_stale_pending,
    "retry": retry_due_failures,
    "retention": apply_retention,
}
