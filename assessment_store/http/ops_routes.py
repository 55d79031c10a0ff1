"""Liveness, readiness and metrics (no authentication: probes and Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from assessment_store import health
from assessment_store.http.dependencies import Store
from assessment_store.http.schemas import HealthResponse

router = APIRouter()


@router.get("/health", response_model=HealthResponse)
def liveness() -> HealthResponse:
    """The process is up (no dependency is checked)."""
    return HealthResponse(status="ok")


@router.get("/ready")
async def readiness(store: Store) -> JSONResponse:
    """200 when PostgreSQL, Redis and the broker all answer; 503 naming what does not."""

    def check() -> dict[str, health.ComponentHealth]:
        status = store.get_health_status()
        components = dict(status.components)
        broker = store.settings.effective_broker_url
        components["broker"] = (
            components["redis"]
            if broker == store.settings.redis_url
            else health.check_redis(broker)
        )
        return components

    components = await run_in_threadpool(check)
    ready = all(c.ok for c in components.values())
    return JSONResponse(
        status_code=200 if ready else 503,
        content={
            "status": "ready" if ready else "unavailable",
            "components": {k: v.to_wire() for k, v in components.items()},
        },
    )


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    registry = request.app.state.metrics_registry
    body = await run_in_threadpool(generate_latest, registry)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
