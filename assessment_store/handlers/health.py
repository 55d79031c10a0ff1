"""The health check: is the server reachable, and (for URLs) does it answer well?

A server that is down is a *result* (``healthy: false``), not a failed assessment;
only a request that cannot be assessed (no or bad serverName) fails, permanently.
"""

from __future__ import annotations

import socket
import statistics
import time
from typing import Any

import httpx

from assessment_store.handlers.context import HandlerContext
from assessment_store.handlers.targets import Target, parse_target

DEEP_SCAN_PROBES = 5
DETAIL_HEADERS = ("server", "content-type", "content-length", "cache-control")


def tcp_probe(host: str, port: int, timeout: float) -> dict[str, Any]:
    """Connect once; reachability and connect latency."""
    started = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        return {"reachable": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"reachable": True, "latencyMs": round((time.perf_counter() - started) * 1000, 3)}


def http_probe(target: Target, timeout: float, include_details: bool) -> dict[str, Any]:
    """GET the URL (no redirects followed); status, latency and, optionally, headers."""
    assert target.url is not None
    started = time.perf_counter()
    try:
        with httpx.Client(timeout=timeout, verify=False, follow_redirects=False) as client:
            response = client.get(target.url, headers={"User-Agent": "assessment-store/health"})
    except httpx.HTTPError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    probe: dict[str, Any] = {
        "ok": response.status_code < 400,
        "statusCode": response.status_code,
        "latencyMs": round((time.perf_counter() - started) * 1000, 3),
    }
    if include_details:
        probe["headers"] = {h: response.headers[h] for h in DETAIL_HEADERS if h in response.headers}
        probe["bytes"] = len(response.content)
    return probe


def run(ctx: HandlerContext) -> dict[str, Any]:
    """``handler(ctx) -> dict`` for assessment type ``health``."""
    options = ctx.request.options
    target = parse_target(ctx.request.server_name, default_port=80)
    if options.server_filter and target.host not in options.server_filter:
        return {
            "target": str(target),
            "skipped": True,
            "reason": f"{target.host} is not in serverFilter",
        }
    timeout = max(0.1, min(ctx.remaining_seconds, options.timeout or ctx.remaining_seconds))
    ctx.report_progress(10, f"connecting to {target.host}:{target.port}")
    tcp = tcp_probe(target.host, target.port, timeout)
    result: dict[str, Any] = {"target": str(target), "tcp": tcp}
    if options.deep_scan and tcp["reachable"]:
        ctx.report_progress(30, "measuring connect latency")
        samples = [tcp_probe(target.host, target.port, timeout) for _ in range(DEEP_SCAN_PROBES)]
        latencies = [s["latencyMs"] for s in samples if s["reachable"]]
        result["latency"] = {
            "probes": DEEP_SCAN_PROBES,
            "succeeded": len(latencies),
            "minMs": min(latencies, default=None),
            "medianMs": statistics.median(latencies) if latencies else None,
            "maxMs": max(latencies, default=None),
        }
    healthy = bool(tcp["reachable"])
    if target.url and options.check_server_status and tcp["reachable"]:
        ctx.report_progress(60, f"requesting {target.url}")
        result["http"] = http_probe(target, timeout, options.include_details)
        healthy = healthy and bool(result["http"]["ok"])
    ctx.report_progress(90, "healthy" if healthy else "unhealthy")
    result["healthy"] = healthy
    return result
