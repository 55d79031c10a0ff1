"""Prometheus metrics recorded by the process that makes a change (API, worker, beat).

Prefork workers write them to PROMETHEUS_MULTIPROC_DIR (multiprocess mode) and the
worker's main process serves them (see workers.signals). Gauges that describe the
whole system are computed at scrape time by the API (http.metrics_collector). No
label carries an assessment id: cardinality stays bounded.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram

logger = logging.getLogger("assessment_store.metrics")


CREATED = Counter(
    "assessmentstore_assessments_created_total", "Assessments created", ["assessment_type"]
)
TRANSITIONS = Counter(
    "assessmentstore_transitions_total", "State transitions", ["from_state", "to_state"]
)
PROCESSING_SECONDS = Histogram(
    "assessmentstore_processing_time_seconds",
    "Time from claim to the end of an attempt",
    ["assessment_type", "outcome"],
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
QUEUE_WAIT_SECONDS = Histogram(
    "assessmentstore_queue_wait_time_seconds",
    "Time from pending to claimed",
    ["assessment_type"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60),
)
ERRORS = Counter("assessmentstore_errors_total", "Failed attempts by error kind", ["error_type"])
