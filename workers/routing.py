"""Queues and the priority bands that route assessments to them (SPEC section 7)."""

from __future__ import annotations

from kombu.entity import Queue

HIGH_QUEUE = "assessments.high"
NORMAL_QUEUE = "assessments.normal"
LOW_QUEUE = "assessments.low"
MAINTENANCE_QUEUE = "maintenance"

# Highest first: with queue_order_strategy="priority" a worker consuming several
# queues always polls them in this order, so high work overtakes a low backlog.
ASSESSMENT_QUEUES = (HIGH_QUEUE, NORMAL_QUEUE, LOW_QUEUE)
# Maintenance first: its jobs are short and must not starve behind a low backlog.
ALL_QUEUES = (MAINTENANCE_QUEUE, *ASSESSMENT_QUEUES)
TASK_QUEUES = tuple(Queue(name, routing_key=name) for name in ALL_QUEUES)


def queue_for_priority(priority: int) -> str:
    """8-10 -> high, 4-7 -> normal, 1-3 -> low."""
    if not 1 <= priority <= 10:
        raise ValueError(f"priority must be 1-10, got {priority}")
    if priority >= 8:
        return HIGH_QUEUE
    if priority >= 4:
        return NORMAL_QUEUE
    return LOW_QUEUE
