"""The FastAPI application factory (``assessment-store api`` serves it with uvicorn)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry, Metric
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from assessment_store import __version__
from assessment_store.http import errors, ops_routes, routes
from assessment_store.http.limits import BodySizeLimit
from assessment_store.http.metrics_collector import SystemCollector
from assessment_store.http.ui import mount as ui
from assessment_store.http.ui.stream_hub import StreamHub
from assessment_store.service import AssessmentStore

MAX_BODY_BYTES = 2 * 1024 * 1024


def create_app(
    store: AssessmentStore,
    jwt_secret: str,
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    jwt_max_lifetime: timedelta | None = None,
) -> FastAPI:
    """An app serving ``store``; tokens are verified with ``jwt_secret`` and may live at
    most ``jwt_max_lifetime`` (default: the store's JWT_MAX_LIFETIME_SECONDS)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.live_feed.close()
        store.close()

    app = FastAPI(
        title="AssessmentStore",
        version=__version__,
        description="Durable assessments: create, watch, wait for and audit them.",
        lifespan=lifespan,
    )
    app.state.store = store
    app.state.jwt_secret = jwt_secret
    app.state.jwt_max_lifetime = jwt_max_lifetime or timedelta(
        seconds=store.settings.jwt_max_lifetime_seconds
    )
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(ops_routes.router)
    ui.install(app, store)
    registry = CollectorRegistry(auto_describe=True)
    registry.register(_ProcessMetrics(store, app.state.stream_hub))
    registry.register(SystemCollector(store))
    app.state.metrics_registry = registry
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    return app


class _ProcessMetrics(Collector):
    """This process's own counters and histograms (the default registry), and how many
    long-polls and dashboard streams it is holding."""

    def __init__(self, store: AssessmentStore, hub: StreamHub) -> None:
        self.store = store
        self.hub = hub

    def collect(self) -> Iterable[Metric]:
        yield from REGISTRY.collect()
        waiters = GaugeMetricFamily(
            "assessmentstore_api_waiters", "Long-polls this API process is holding"
        )
        waiters.add_metric([], float(self.store.notifier.watch_count))
        yield waiters
        streams = GaugeMetricFamily(
            "assessmentstore_dashboard_streams", "Live dashboard streams this API process serves"
        )
        streams.add_metric([], float(self.hub.stream_count))
        yield streams
