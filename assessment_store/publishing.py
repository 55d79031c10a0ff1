"""Publishing assessments to the Celery queues: the store's default Dispatcher.

The Celery app behind it is made on the first publish (importing Celery costs a
few hundred milliseconds that a read-only command never needs), from the same
configuration as the workers' (``celery_config``). The worker package is never
imported: messages are sent by task name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from assessment_store.celery_config import celery_settings
from assessment_store.config import Settings
from assessment_store.dispatch import DispatchItem
from assessment_store.policy import time_limits
from assessment_store.queues import RUN_ASSESSMENT_TASK, queue_for_priority

logger = logging.getLogger("assessment_store.publishing")
PUBLISH_BATCH = 1000


def producer_settings(settings: Settings) -> dict[str, Any]:
    """The workers' Celery configuration, with the socket bounded by the publish
    timeout: a producer only publishes, and against a broker that accepts connections
    but answers nothing (frozen, hung), the workers' 30 s read timeout would hold every
    create for 30 s. The row is the promise; a publish given up is re-dispatched."""
    conf = celery_settings(settings)
    conf["broker_transport_options"] = {
        **conf["broker_transport_options"],
        "socket_timeout": settings.broker_publish_timeout_seconds,
    }
    return conf


class CeleryDispatcher:
    """Publishes ``run_assessment`` messages, one broker connection for a whole batch.

    ``app`` is an existing Celery app to publish with (a worker's own); without one, a
    producer app is made on first use."""

    def __init__(self, settings: Settings, app: Any = None) -> None:
        self._settings = settings
        self._app = app
        self._owns_app = app is None
        self._lock = threading.Lock()

    def _celery(self) -> Any:
        with self._lock:
            if self._app is None:
                from celery import Celery  # heavy: only once something is published

                app = Celery("assessment-store-producer", set_as_current=False)
                app.conf.update(producer_settings(self._settings))
                self._app = app
            return self._app

    def dispatch(self, items: Sequence[DispatchItem]) -> None:
        if not items:
            return
        app = self._celery()
        task = app.signature(RUN_ASSESSMENT_TASK)
        # kombu's publish batch sends the messages as pipelined LPUSHes, up to
        # PUBLISH_BATCH at a time, instead of one round trip (and one Redis client
        # made for it) each; transports without batching publish one by one.
        queues = {queue_for_priority(item.priority) for item in items}
        with app.producer_or_acquire() as producer, producer.batch(max_size=PUBLISH_BATCH):
            # Declared once per batch, as kombu would on the first message (it caches
            # declarations per connection), not looked up again for every message.
            for name in sorted(queues):
                producer.maybe_declare(app.amqp.queues[name])
            for item in items:
                soft, hard = time_limits(item.timeout_seconds)
                task.apply_async(
                    args=(item.assessment_id,),
                    queue=queue_for_priority(item.priority),
                    soft_time_limit=soft,
                    time_limit=hard,
                    producer=producer,
                    declare=[],
                    # What Flower and the logs show; given, so Celery need not
                    # saferepr() every message's arguments.
                    argsrepr=repr((item.assessment_id,)),
                    kwargsrepr="{}",
                )
        logger.debug("dispatched %d assessment(s)", len(items))

    def close(self) -> None:
        """Release the producer app's broker connections (not a borrowed app's)."""
        with self._lock:
            if self._owns_app and self._app is not None:
                self._app.close()
                self._app = None
