"""The beat schedule: intervals from settings, every job on the maintenance queue."""

from __future__ import annotations

from typing import Any

from assessment_store.config import Settings
from assessment_store.queues import MAINTENANCE_TASK_PREFIX


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Rescue, re-dispatch and retry every MAINTENANCE_INTERVAL_SECONDS; retention every
    RETENTION_INTERVAL_SECONDS (hourly by default).

    Each entry expires after one interval, so a backlog of ticks (a beat that ran while
    no worker consumed ``maintenance``) does not run the same job many times over.
    """
    every = settings.maintenance_interval_seconds
    jobs = {
        "rescue": every,
        "redispatch": every,
        "retry": every,
        "retention": settings.retention_interval_seconds,
    }
    return {
        f"assessment-store-{job}": {
            "task": f"{MAINTENANCE_TASK_PREFIX}{job}",
            "schedule": interval,
            "options": {"expires": interval},
        }
        for job, interval in jobs.items()
    }
