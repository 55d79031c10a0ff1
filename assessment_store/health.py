"""Dependency checks: does PostgreSQL answer, does Redis answer, and how fast."""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from assessment_store.models import ComponentHealth, HealthStatus, utc_now

__all__ = ["ComponentHealth", "check", "check_database", "check_redis"]

CHECK_TIMEOUT_SECONDS = 2.0


def _timed(probe: Callable[[], None]) -> ComponentHealth:
    started = time.perf_counter()
    try:
        probe()
    except Exception as exc:  # any failure means "not healthy"; the detail says which
        return ComponentHealth(ok=False, detail=f"{type(exc).__name__}: {exc}"[:500])
    return ComponentHealth(ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 3))


def check_database(ping: Callable[[], None]) -> ComponentHealth:
    """One round trip (``ping``) to PostgreSQL, timed."""
    return _timed(ping)


def check_redis(url: str) -> ComponentHealth:
    """PING on a short-lived connection with a short timeout."""

    def probe() -> None:
        client = redis.Redis.from_url(
            url, socket_timeout=CHECK_TIMEOUT_SECONDS, socket_connect_timeout=CHECK_TIMEOUT_SECONDS
        )
        try:
            client.ping()
        finally:
            client.close()

    return _timed(probe)


def check(ping_database: Callable[[], None], redis_url: str) -> HealthStatus:
    """The store's health: healthy only when every component answered."""
    components = {"database": check_database(ping_database), "redis": check_redis(redis_url)}
    return HealthStatus(
        healthy=all(c.ok for c in components.values()),
        components=components,
        checked_at=utc_now(),
    )
