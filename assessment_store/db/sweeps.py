"""SQL of the maintenance sweeps: the candidates of retry and rescue, retention, lease
renewal and re-dispatch.

Each claims rows with FOR UPDATE SKIP LOCKED (or runs under an advisory lock) so two
runners at once split the work instead of doing it twice. Changing a claimed
candidate's state is not done here: it is a transition like any other
(``transitions.apply``), applied to the whole batch at once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, RowMapping, text

from assessment_store.db.predicates import FINISHED


def claim_failures(
    conn: Connection, *, max_retries: int, due_only: bool, limit: int
) -> list[RowMapping]:
    """Lock failed assessments with retries left (``due_only``: whose next_retry_at has
    passed, the scheduled path; otherwise any, an operator's batch retry), highest
    priority and oldest first. Rows locked by another runner (a second beat) are
    skipped, so two runners split the work instead of retrying anything twice."""
    due = "AND next_retry_at IS NOT NULL AND next_retry_at <= now()" if due_only else ""
    result = conn.execute(
        text(
            f"""
            SELECT assessment_id, version, retry_count FROM assessment_states
            WHERE state = 'failed' AND retry_count < :max_retries {due}
            ORDER BY priority DESC, completed_at
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
            """
        ),
        {"max_retries": max_retries, "limit": limit},
    )
    return list(result.mappings())


def delete_finished_before(conn: Connection, cutoff: datetime, limit: int) -> tuple[list[str], int]:
    """Delete up to ``limit`` finished assessments older than ``cutoff`` with their audit rows.

    Finished is the policy's (completed, cancelled, or a dead letter). Returns
    (the ids deleted, audit rows deleted). Rows locked by someone else are skipped.
    """
    row = conn.execute(
        text(
            f"""
            WITH doomed AS (
                SELECT assessment_id FROM assessment_states
                WHERE completed_at IS NOT NULL AND completed_at < :cutoff
                  AND {FINISHED}
                ORDER BY completed_at
                LIMIT :limit
                FOR UPDATE SKIP LOCKED
            ), audit_count AS (
                SELECT count(*) AS n FROM assessment_state_audit AS a
                JOIN doomed AS d USING (assessment_id)
            ), deleted AS (
                DELETE FROM assessment_states AS s USING doomed AS d
                WHERE s.assessment_id = d.assessment_id
                RETURNING s.assessment_id
            )
            SELECT (SELECT coalesce(array_agg(assessment_id), '{{}}') FROM deleted),
                   (SELECT n FROM audit_count)
            """
        ),
        {"cutoff": cutoff, "limit": limit},
    ).one()
    return list(row[0]), int(row[1])


def renew_lease(conn: Connection, assessment_id: str, worker_id: str, lease_seconds: float) -> bool:
    """Extend the lease if ``worker_id`` still holds it; False once it does not."""
    result = conn.execute(
        text(
            "UPDATE assessment_leases "
            # From the write, not the transaction's start (see the claim's statement).
            "SET lease_expires_at = clock_timestamp() + make_interval(secs => :lease), "
            "heartbeat_at = now() "
            "WHERE assessment_id = :id AND worker_id = :worker"
        ),
        {"id": assessment_id, "worker": worker_id, "lease": lease_seconds},
    )
    return result.rowcount == 1


def claim_lost_attempts(conn: Connection, limit: int) -> list[RowMapping]:
    """Lock processing rows whose lease has expired (the worker died or hung).

    Both the assessment and its lease row are locked, so a heartbeat that renews the
    lease concurrently either wins (the row no longer qualifies when re-checked) or
    waits; a live, renewing worker is never rescued. Rows locked by another rescuer
    are skipped.
    """
    result = conn.execute(
        text(
            """
            SELECT s.assessment_id, s.version, s.retry_count, l.worker_id AS lease_worker,
                   l.lease_expires_at
            FROM assessment_states AS s
            JOIN assessment_leases AS l USING (assessment_id)
            WHERE s.state = 'processing' AND l.lease_expires_at < now()
            ORDER BY l.lease_expires_at
            LIMIT :limit
            FOR UPDATE OF s, l SKIP LOCKED
            """
        ),
        {"limit": limit},
    )
    return list(result.mappings())


def try_job_lock(conn: Connection, job: str) -> bool:
    """Take this transaction's advisory lock for a singleton job; False if another
    runner (a second beat) holds it. Released at commit or rollback."""
    return bool(
        conn.execute(
            text("SELECT pg_try_advisory_xact_lock(hashtext('assessment_store.' || :job))"),
            {"job": job},
        ).scalar_one()
    )


def claim_stale_pending(conn: Connection, *, after_seconds: float, limit: int) -> list[RowMapping]:
    """Pending rows not (re-)published for ``after_seconds``, highest priority and oldest
    first; marks them dispatched now. Run under :func:`try_job_lock`."""
    result = conn.execute(
        text(
            """
            WITH picked AS (
                SELECT s.assessment_id, s.priority, s.request_data, s.updated_at
                FROM assessment_states AS s
                LEFT JOIN assessment_leases AS l USING (assessment_id)
                WHERE s.state = 'pending'
                  AND s.updated_at < now() - make_interval(secs => :after)
                  AND (l.dispatched_at IS NULL
                       OR l.dispatched_at < now() - make_interval(secs => :after))
                ORDER BY s.priority DESC, s.updated_at
                LIMIT :limit
            ), marked AS (
                INSERT INTO assessment_leases (assessment_id, dispatched_at, dispatch_count)
                SELECT assessment_id, now(), 1 FROM picked
                ON CONFLICT (assessment_id) DO UPDATE
                SET dispatched_at = now(),
                    dispatch_count = assessment_leases.dispatch_count + 1
            )
            SELECT assessment_id, priority, request_data FROM picked
            ORDER BY priority DESC, updated_at
            """
        ),
        {"after": after_seconds, "limit": limit},
    )
    return list(result.mappings())
