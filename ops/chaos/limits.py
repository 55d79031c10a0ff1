"""What a time limit must leave behind: each assessment completed, or failed with its
retries used up and the limit named; every failure recorded by the worker running
the attempt, naming the limit (never left for the lease to run out)."""

from __future__ import annotations

from sqlalchemy import Connection, text

from assessment_store.execution import timeout_message


def time_limit_problems(conn: Connection, ids: list[str], timeout: float) -> list[str]:
    """Problems with how the limit ended the attempts of ``ids`` (empty when none)."""
    limit = timeout_message(timeout)
    problems = [
        f"{aid} ended {state} after {retries} retries: {error}"
        for aid, state, retries, error, dead in conn.execute(
            text(
                "SELECT assessment_id, state::text, retry_count, error_message, "
                "next_retry_at IS NULL FROM assessment_states WHERE assessment_id = ANY(:ids)"
            ),
            {"ids": ids},
        )
        if state != "completed" and not (state == "failed" and dead and error == limit)
    ]
    problems += [
        f"{aid}: failure by {who!r}: {reason}"
        for aid, who, reason in conn.execute(
            text(
                "SELECT assessment_id, changed_by, change_reason FROM assessment_state_audit "
                "WHERE event = 'fail' AND assessment_id = ANY(:ids)"
            ),
            {"ids": ids},
        )
        if reason != f"failed: {limit}" or "@" not in who
    ]
    conn.rollback()
    return problems
