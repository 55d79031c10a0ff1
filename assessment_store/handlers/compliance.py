"""The compliance check: the external compliance server runs it over HTTP.

Configured by ``COMPLIANCE_BASE_URL`` and ``COMPLIANCE_API_KEY``. Timeouts, a 5xx, 408
or 429 are retryable failures; other 4xx answers mean the request itself is wrong and
fail permanently. A circuit breaker (pybreaker, per process) opens after
``COMPLIANCE_BREAKER_FAILURES`` retryable failures in a row, so an outage fails
attempts fast (and they retry with backoff) instead of piling up on timeouts.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pybreaker

from assessment_store.config import Settings
from assessment_store.errors import PermanentAssessmentError
from assessment_store.handlers.context import HandlerContext

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class ComplianceServerError(RuntimeError):
    """Raised when the compliance server failed in a way worth retrying."""


class ComplianceUnavailableError(ComplianceServerError):
    """Raised without calling the server while the circuit breaker is open."""


_breakers: dict[tuple[int, float], pybreaker.CircuitBreaker] = {}
_breakers_lock = threading.Lock()


def breaker_for(settings: Settings) -> pybreaker.CircuitBreaker:
    """The process's breaker for these thresholds."""
    key = (settings.compliance_breaker_failures, settings.compliance_breaker_reset_seconds)
    with _breakers_lock:
        if key not in _breakers:
            _breakers[key] = pybreaker.CircuitBreaker(
                fail_max=key[0],
                reset_timeout=key[1],
                exclude=[PermanentAssessmentError],
                name="compliance-server",
            )
        return _breakers[key]


def call_compliance_server(settings: Settings, payload: dict[str, Any], timeout: float) -> Any:
    """POST /assessments; the JSON answer, or an error that says whether to retry."""
    headers = {"Accept": "application/json"}
    if settings.compliance_api_key:
        headers["Authorization"] = f"Bearer {settings.compliance_api_key}"
    try:
        with httpx.Client(
            base_url=settings.compliance_base_url, timeout=timeout, headers=headers
        ) as client:
            response = client.post("/assessments", json=payload)
    except httpx.HTTPError as exc:
        raise ComplianceServerError(
            f"compliance server unreachable: {type(exc).__name__}: {exc}"
        ) from exc
    if response.status_code in RETRYABLE_STATUS:
        raise ComplianceServerError(
            f"compliance server answered {response.status_code}: {response.text[:300]}"
        )
    if response.status_code >= 400:
        raise PermanentAssessmentError(
            f"compliance server refused the request ({response.status_code}): {response.text[:300]}"
        )
    try:
        return response.json()
    except ValueError as exc:
        raise ComplianceServerError("compliance server answered with invalid JSON") from exc


def run(ctx: HandlerContext) -> dict[str, Any]:
    """``handler(ctx) -> dict`` for assessment type ``compliance``."""
    settings = ctx.settings
    timeout = max(0.1, min(ctx.remaining_seconds, settings.compliance_timeout_seconds))
    payload = {"assessmentId": ctx.assessment_id, **ctx.request.to_wire()}
    ctx.report_progress(10, "submitting to the compliance server")
    breaker = breaker_for(settings)
    try:
        answer = breaker.call(call_compliance_server, settings, payload, timeout)
    except pybreaker.CircuitBreakerError as exc:
        raise ComplianceUnavailableError(
            f"compliance server circuit open after repeated failures; retrying later ({exc})"
        ) from exc
    if not isinstance(answer, dict):
        raise PermanentAssessmentError("compliance server answered with JSON that is not an object")
    ctx.report_progress(90, "compliance report received")
    return {"complianceServer": settings.compliance_base_url, "report": answer}
