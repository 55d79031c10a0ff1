"""Scrape-time gauges of the whole system, served by the API's /metrics."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from assessment_store.outages import OutageLog
from assessment_store.queue_depth import read_queue_depths
from assessment_store.service import AssessmentStore
from assessment_store.states import AssessmentState

logger = logging.getLogger("assessment_store.metrics")

SOURCES = ("database", "broker")


class SystemCollector(Collector):
    """Scrape-time gauges from PostgreSQL and Redis.

    A source that does not answer drops its gauges from that scrape (a stale value
    would lie), and says so: ``assessmentstore_metrics_source_up{source}`` is 0 and
    ``assessmentstore_metrics_scrape_errors_total{source}`` grows; the log gets one
    line per outage, not a traceback per scrape."""

    def __init__(self, store: AssessmentStore) -> None:
        self.store = store
        self._errors = dict.fromkeys(SOURCES, 0)
        self._outages = OutageLog(logger)

    def collect(self) -> Iterator[Metric]:
        up: dict[str, bool] = {}
        for source, gather in (("database", self._database), ("broker", self._broker)):
            try:
                families = list(gather())
            except Exception as exc:
                self._errors[source] += 1
                self._outages.failed(f"metrics_{source}_unavailable", exc)
                up[source] = False
                continue
            self._outages.succeeded(f"metrics_{source}_unavailable")
            up[source] = True
            yield from families
        source_up = GaugeMetricFamily(
            "assessmentstore_metrics_source_up",
            "Whether a source of the system gauges answered this scrape (1) or not (0)",
            labels=["source"],
        )
        errors = CounterMetricFamily(
            "assessmentstore_metrics_scrape_errors",
            "Scrapes whose system gauges a source could not give",
            labels=["source"],
        )
        for source in SOURCES:
            source_up.add_metric([source], 1.0 if up[source] else 0.0)
            errors.add_metric([source], float(self._errors[source]))
        yield source_up
        yield errors

    def _database(self) -> Iterator[GaugeMetricFamily]:
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
        gauges = self.store.get_system_gauges()
        for state in AssessmentState:
            by_state.add_metric([state.value], float(gauges.counts_by_state.get(state, 0)))
        oldest.add_metric([], gauges.oldest_pending_seconds)
        dead.add_metric([], float(gauges.dead_letters))
        yield by_state
        yield oldest
        yield dead

    def _broker(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "assessmentstore_queue_depth", "Messages waiting in each broker queue", labels=["queue"]
        )
        for queue, waiting in read_queue_depths(self.store.settings.effective_broker_url).items():
            depth.add_metric([queue], float(waiting))
        yield depth
