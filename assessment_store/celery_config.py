"""The Celery configuration shared by producers and workers; every choice has a reason.

Producers (``assessment_store.publishing``) and the worker app (``workers``) load the
same settings, so a message is published exactly as the workers expect it.
"""

from __future__ import annotations

from typing import Any

from kombu.entity import Exchange, Queue

from assessment_store.config import Settings
from assessment_store.queues import (
    ALL_QUEUES,
    MAINTENANCE_QUEUE,
    MAINTENANCE_TASK_PREFIX,
    NORMAL_QUEUE,
)

# All messages carry one priority so that Redis's priority steps never reorder them:
# the queue order (high, normal, low) alone decides what runs first.
UNIFORM_MESSAGE_PRIORITY = 0


def declared_queue(name: str) -> Queue:
    """A queue bound to a direct exchange of its own name, with its name as routing key:
    each queue is addressed on its own (left to Celery, every queue would be bound to
    the default queue's exchange), and which one a worker serves first stays the
    order it polls them in."""
    return Queue(name, Exchange(name, type="direct"), routing_key=name)  # type: ignore[no-untyped-call]


TASK_QUEUES = tuple(declared_queue(name) for name in ALL_QUEUES)
# Beat's jobs go to the maintenance queue by name (Celery 5.7 deprecates the task's own
# ``queue`` attribute, and 6.0 ignores it); assessments are published to their band's
# queue explicitly (publishing.py).
TASK_ROUTES = {f"{MAINTENANCE_TASK_PREFIX}*": {"queue": MAINTENANCE_QUEUE}}


def celery_settings(settings: Settings) -> dict[str, Any]:
    """``app.conf`` for the store's settings (the beat schedule is added by workers)."""
    visibility = settings.broker_visibility_timeout_seconds
    return {
        "broker_url": settings.effective_broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_connection_timeout": settings.broker_publish_timeout_seconds,
        "broker_transport_options": {
            # Redis emulates acks: an unacked message is delivered again after this.
            "visibility_timeout": visibility,
            # Poll queues in the declared order every time (kombu 5.7 keeps it).
            "queue_order_strategy": "priority",
            "socket_connect_timeout": settings.broker_publish_timeout_seconds,
            "socket_timeout": 30,
            "health_check_interval": 25,
        },
        # No result backend (PostgreSQL holds results), but keep the option consistent
        # should one be configured.
        "result_backend_transport_options": {"visibility_timeout": visibility},
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "event_serializer": "json",
        "timezone": "UTC",
        "enable_utc": True,
        "task_queues": TASK_QUEUES,
        "task_routes": TASK_ROUTES,
        # A message published without a queue goes where normal priority goes.
        "task_default_queue": NORMAL_QUEUE,
        "task_default_exchange": NORMAL_QUEUE,
        "task_default_exchange_type": "direct",
        "task_default_routing_key": NORMAL_QUEUE,
        "task_default_priority": UNIFORM_MESSAGE_PRIORITY,
        # Ack after the task ran, and give the message back if the child died
        # (SIGKILL, OOM): the claim's compare-and-set makes the redelivery harmless.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # A failed attempt (workers.tasks.AttemptFailedError) or one killed at its hard
        # time limit is recorded in PostgreSQL: its message is acked, never delivered
        # again; the store's retry policy schedules the next attempt (Celery's defaults,
        # spelled out because the guarantee depends on them).
        "task_acks_on_failure": True,
        "task_acks_on_timeout": True,
        # How many messages each child reserves ahead: see WORKER_PREFETCH_MULTIPLIER.
        # A reserved message is not lost if the worker dies (unacked: given back on
        # restart, and re-dispatched from PostgreSQL when stale).
        "worker_prefetch_multiplier": settings.worker_prefetch_multiplier,
        # On losing the broker connection, keep running attempts going (Celery's
        # cancel-on-connection-loss is off on purpose): a redelivered message finds the
        # row already claimed (compare-and-set) and does nothing, whereas cancelling
        # would leave each attempt to be rescued as "worker lost" and burn a retry on
        # every Redis blip, and could repeat a handler's side effects.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # Flower always sees workers (heartbeats, remote control); it sees each task
        # only with task events on (TASK_EVENTS), which costs throughput.
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": settings.task_events,
        # A publish may wait briefly for the broker; creation never waits long.
        "task_publish_retry": True,
        "task_publish_retry_policy": {
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.2,
        },
        "worker_hijack_root_logger": False,
    }
