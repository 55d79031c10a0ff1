"""Read-side use cases: list pages, stats and gauges, shaped from repository rows."""

from __future__ import annotations

from sqlalchemy import Connection, RowMapping

from assessment_store import at_rest
from assessment_store.db import reads
from assessment_store.encryption import KeyRing
from assessment_store.models import (
    FROM_DATABASE,
    Assessment,
    AssessmentFilters,
    AssessmentPage,
    AssessmentStats,
    SystemGauges,
)
from assessment_store.pagination import decode_cursor, encode_cursor
from assessment_store.states import AssessmentState


def list_page(
    conn: Connection,
    filters: AssessmentFilters,
    *,
    owner: str | None,
    keys: KeyRing | None = None,
) -> AssessmentPage:
    """One page of :func:`reads.list_assessments`; ``owner`` overrides created_by;
    encrypted values opened with ``keys`` (see at_rest)."""
    query = reads.ListQuery(
        states=[state.value for state in filters.states] if filters.states else None,
        assessment_type=filters.assessment_type,
        server_name=filters.server_name,
        source=filters.source,
        created_by=owner if owner is not None else filters.created_by,
        created_after=filters.created_after,
        created_before=filters.created_before,
        after=decode_cursor(filters.cursor) if filters.cursor else None,
        limit=filters.limit,
        search=filters.q,
        # Encrypted error messages are ciphertext: searched only while encryption is off.
        search_errors=keys is None,
    )
    rows = reads.list_assessments(conn, query)
    items = [
        Assessment.model_validate(dict(at_rest.open_row(keys, row)), context=FROM_DATABASE)
        for row in rows[: filters.limit]
    ]
    next_cursor = None
    if len(rows) > filters.limit:
        last = items[-1]
        next_cursor = encode_cursor(last.created_at, last.assessment_id)
    return AssessmentPage(items=items, next_cursor=next_cursor)


def stats(conn: Connection, *, window_seconds: int, owner: str | None) -> AssessmentStats:
    """Counts by state and rates over the last ``window_seconds``."""
    row = reads.fetch_stats(conn, window_seconds=window_seconds, created_by=owner)
    counts = {state: int(row[state.value]) for state in AssessmentState}
    recent_completed = int(row["recent_completed"])
    recent_failed = int(row["recent_failed"])
    recent_finished = recent_completed + recent_failed
    average = row["recent_average_seconds"]
    return AssessmentStats(
        counts_by_state=counts,
        total=sum(counts.values()),
        active=counts[AssessmentState.PENDING] + counts[AssessmentState.PROCESSING],
        dead_letters=int(row["dead_letters"]),
        window_seconds=window_seconds,
        throughput_per_minute=recent_completed * 60.0 / window_seconds,
        average_processing_seconds=None if average is None else float(average),
        error_rate=(recent_failed / recent_finished) if recent_finished else 0.0,
    )


def gauges(row: RowMapping) -> SystemGauges:
    """:func:`reads.fetch_gauges`'s row as the model."""
    return SystemGauges(
        counts_by_state={state: int(row[state.value]) for state in AssessmentState},
        oldest_pending_seconds=float(row["oldest_pending_seconds"]),
        dead_letters=int(row["dead_letters"]),
    )
