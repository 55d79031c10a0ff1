"""Per-process set-up: fresh database engines after fork, and the worker's metrics.

Prefork children record Prometheus metrics in PROMETHEUS_MULTIPROC_DIR (set by
``assessment-store worker`` before Celery starts); the main process serves all of
them on WORKER_METRICS_HOST:WORKER_METRICS_PORT, the only place a worker listens
(loopback by default: a remote Prometheus needs the host set to 0.0.0.0).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery.signals import (
    after_setup_logger,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
)
from prometheus_client import CollectorRegistry, multiprocess, start_http_server

from assessment_store.config import get_settings
from workers import runtime, timers

logger = logging.getLogger("workers.signals")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Celery's two INFO lines per task ("received", "succeeded in").
PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


@after_setup_logger.connect
def _quiet_per_task_lines(loglevel: int | str | None = None, **_: Any) -> None:
    # The audit trail already records every change of every assessment, durably;
    # two log lines per task repeat it, and writing them is a measurable share of a
    # short task's cost. Warnings and errors still show; --loglevel DEBUG shows all.
    level = logging.getLevelName(loglevel) if isinstance(loglevel, str) else loglevel
    if isinstance(level, int) and level <= logging.DEBUG:
        return
    for name in PER_TASK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


@worker_init.connect
def _serve_metrics(sender: Any = None, **_: Any) -> None:
    if sender is not None and getattr(sender, "hostname", None):
        runtime.remember_hostname(str(sender.hostname))
    settings = get_settings()
    port, host = settings.worker_metrics_port, settings.worker_metrics_host
    if not port or not os.environ.get(MULTIPROC_ENV):
        return
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    try:
        start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        logger.warning("worker_metrics_unavailable: port %d: %s", port, exc)
        return
    logger.info("worker_metrics_serving: http://%s:%d/metrics", host, port)


@worker_ready.connect
def _compact_cancelled_timers(sender: Any = None, **_: Any) -> None:
    hub = getattr(sender, "hub", None)
    if hub is not None:  # the prefork pool's event loop (none for solo or threads)
        timers.install(hub)


@worker_process_init.connect
def _fresh_store_after_fork(**_: Any) -> None:
    # Connections inherited from the parent must never be used by the child.
    runtime.reset(close=False)


@worker_process_shutdown.connect
def _close_store(pid: int | None = None, **_: Any) -> None:
    runtime.reset(close=True)
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid or os.getpid())
