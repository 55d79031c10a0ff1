"""The dashboard's overview: counts by state, dead letters, the oldest pending
assessment, queue depth per band and throughput per minute over the last hour."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis

from assessment_store.db import reads
from assessment_store.events import Reader
from assessment_store.outages import OutageLog
from assessment_store.queue_depth import read_queue_depths
from assessment_store.states import AssessmentState

logger = logging.getLogger("assessment_store.overview")
BROKER_OUTAGES = OutageLog(logger)
THROUGHPUT_MINUTES = 60


@dataclass(frozen=True)
class MinuteThroughput:
    minutes_ago: int  # 0: the current minute
    completed: int
    failed: int


@dataclass(frozen=True)
class Overview:
    """One creator's figures (``owner``), or everyone's; queue depths are the whole
    system's (None when the broker did not answer)."""

    counts_by_state: dict[AssessmentState, int]
    dead_letters: int
    oldest_pending_seconds: float
    queue_depths: dict[str, int] | None
    throughput: list[MinuteThroughput]  # oldest minute first, THROUGHPUT_MINUTES of them

    @property
    def total(self) -> int:
        return sum(self.counts_by_state.values())


def build_overview(read: Reader, broker_url: str, owner: str | None) -> Overview:
    """Two reads of the database (on the replica when there is one) and one of Redis."""
    gauges, minutes = read(
        lambda conn: (
            reads.fetch_gauges(conn, owner),
            reads.throughput_by_minute(conn, minutes=THROUGHPUT_MINUTES, created_by=owner),
        )
    )
    by_minute = {int(row["minutes_ago"]): row for row in minutes}
    throughput = [
        MinuteThroughput(
            ago,
            int(by_minute[ago]["completed"]) if ago in by_minute else 0,
            int(by_minute[ago]["failed"]) if ago in by_minute else 0,
        )
        for ago in range(THROUGHPUT_MINUTES - 1, -1, -1)
    ]
    try:
        depths: dict[str, int] | None = read_queue_depths(broker_url)
    except redis.RedisError as exc:
        BROKER_OUTAGES.failed("overview_broker_unreachable", exc)
        depths = None
    else:
        BROKER_OUTAGES.succeeded("overview_broker_unreachable")
    return Overview(
        counts_by_state={state: int(gauges[state.value]) for state in AssessmentState},
        dead_letters=int(gauges["dead_letters"]),
        oldest_pending_seconds=float(gauges["oldest_pending_seconds"]),
        queue_depths=depths,
        throughput=throughput,
    )
