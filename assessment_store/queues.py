"""Queue names, priority bands and the task name: the one home of all three.

Producers (``assessment_store.publishing``), workers (``workers``), the CLI, the demo,
metrics and benchmarks all read them from here.
"""

from __future__ import annotations

from typing import Final

HIGH_QUEUE: Final = "assessments.high"
NORMAL_QUEUE: Final = "assessments.normal"
LOW_QUEUE: Final = "assessments.low"
MAINTENANCE_QUEUE: Final = "maintenance"

# Highest first: with queue_order_strategy="priority" a worker consuming several
# queues always polls them in this order, so high work overtakes a low backlog.
ASSESSMENT_QUEUES: Final = (HIGH_QUEUE, NORMAL_QUEUE, LOW_QUEUE)
# Maintenance first: its jobs are short and must not starve behind a low backlog.
ALL_QUEUES: Final = (MAINTENANCE_QUEUE, *ASSESSMENT_QUEUES)

# Lowest priority of each band (SPEC section 7): 8-10 high, 4-7 normal, 1-3 low.
BANDS: Final = ((8, HIGH_QUEUE), (4, NORMAL_QUEUE), (1, LOW_QUEUE))

RUN_ASSESSMENT_TASK: Final = "assessment_store.run_assessment"
MAINTENANCE_TASK_PREFIX: Final = "assessment_store.maintenance."


def queue_for_priority(priority: int) -> str:
    """8-10 -> high, 4-7 -> normal, 1-3 -> low."""
    if not 1 <= priority <= 10:
        raise ValueError(f"priority must be 1-10, got {priority}")
    return next(queue for lowest, queue in BANDS if priority >= lowest)


def queue_list(queues: tuple[str, ...] = ALL_QUEUES) -> str:
    """Queues as ``celery worker --queues`` takes them (comma-separated, in order)."""
    return ",".join(queues)
