"""Scrape-time gauges of the whole system, served by the API's /metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from assessment_store.queues import ALL_QUEUES
from assessment_store.service import AssessmentStore
from assessment_store.states import AssessmentState

logger = logging.getLogger("assessment_store.metrics")

# kombu's Redis transport keeps each priority step of a queue in its own list.
REDIS_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


class SystemCollector(Collector):
    """Scrape-time gauges from PostgreSQL and Redis."""

    def __init__(self, store: AssessmentStore) -> None:
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        by_state = GaugeMetricFamily(
            "assessmentstore_assessments", "Assessments by state", labels=["state"]
        )
        oldest = GaugeMetricFamily(
            "assessmentstore_oldest_pending_age_seconds",
            "Age of the oldest pending assessment (0 when none)",
        )
        dead = GaugeMetricFamily(
            "assessmentstore_dead_letters", "Failed assessments with no retry coming"
        )
        try:
            gauges = self.store.get_system_gauges()
            for state in AssessmentState:
                by_state.add_metric([state.value], float(gauges.counts_by_state.get(state, 0)))
            oldest.add_metric([], gauges.oldest_pending_seconds)
            dead.add_metric([], float(gauges.dead_letters))
            yield by_state
            yield oldest
            yield dead
        except Exception:
            logger.warning("metrics_database_unavailable", exc_info=True)
        depth = GaugeMetricFamily(
            "assessmentstore_queue_depth", "Messages waiting in each broker queue", labels=["queue"]
        )
        try:
            client = redis.Redis.from_url(
                self.store.settings.effective_broker_url, socket_timeout=2, socket_connect_timeout=2
            )
            try:
                with client.pipeline() as pipe:
                    for queue in ALL_QUEUES:
                        for suffix in REDIS_PRIORITY_SUFFIXES:
                            pipe.llen(queue + suffix)
                    lengths = pipe.execute()
            finally:
                client.close()
            per_queue = len(REDIS_PRIORITY_SUFFIXES)
            for index, queue in enumerate(ALL_QUEUES):
                depth.add_metric(
                    [queue], float(sum(lengths[index * per_queue : (index + 1) * per_queue]))
                )
            yield depth
        except Exception:
            logger.warning("metrics_broker_unavailable", exc_info=True)
