"""HTTP long-polls (``GET /v1/assessments/{id}/wait``) held open across a fault.

Each waiter must come back with its answer (200), or a clean error (408 when its own
wait ran out, 503 while the database is away), never hang: the client gives each
poll the server's wait plus ``slack`` seconds, and running out of that is a hang.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import httpx

from assessment_store.http.auth import Role, issue_token

CLEAN_STATUSES = frozenset({200, 408, 503})
HANG = "hang"
WAITERS_GAUGE = re.compile(r"^assessmentstore_api_waiters (\d+(?:\.\d+)?)$", re.MULTILINE)


def admin_token(secret: str) -> str:
    return issue_token(secret, "chaos", Role.ADMIN, timedelta(hours=2))


@dataclass(frozen=True)
class WaitOutcome:
    assessment_id: str
    status: int | None  # None: no HTTP answer at all
    detail: str  # the state (200), the error code, or what went wrong in transport
    seconds: float

    @property
    def clean(self) -> bool:
        return self.status in CLEAN_STATUSES


async def _poll(client: httpx.AsyncClient, assessment_id: str, wait_seconds: float) -> WaitOutcome:
    started = time.monotonic()
    try:
        response = await client.get(
            f"/v1/assessments/{assessment_id}/wait", params={"timeout": wait_seconds}
        )
    except httpx.TimeoutException:
        return WaitOutcome(assessment_id, None, HANG, time.monotonic() - started)
    except httpx.TransportError as exc:
        return WaitOutcome(assessment_id, None, type(exc).__name__, time.monotonic() - started)
    body = (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else {}
    )
    detail = body.get("state") if response.status_code == 200 else body.get("error", {}).get("code")
    return WaitOutcome(assessment_id, response.status_code, str(detail), time.monotonic() - started)


async def poll_all(
    base_url: str, token: str, ids: list[str], *, wait_seconds: float, slack: float = 20
) -> list[WaitOutcome]:
    """One long-poll per id, all at once; their outcomes in ``ids`` order."""
    limits = httpx.Limits(max_connections=len(ids) + 5, max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=wait_seconds + slack,
        limits=limits,
    ) as client:
        return list(await asyncio.gather(*(_poll(client, i, wait_seconds) for i in ids)))


class LongPolls:
    """``poll_all`` in a thread of its own, so a fault can strike while they wait."""

    def __init__(self, base_url: str, token: str, ids: list[str], *, wait_seconds: float) -> None:
        self.base_url = base_url
        self.token = token
        self.ids = ids
        self.wait_seconds = wait_seconds
        self.outcomes: list[WaitOutcome] = []
        self._thread = threading.Thread(target=self._run, name="long-polls", daemon=True)

    def _run(self) -> None:
        self.outcomes = asyncio.run(
            poll_all(self.base_url, self.token, self.ids, wait_seconds=self.wait_seconds)
        )

    def start(self) -> LongPolls:
        self._thread.start()
        return self

    def join(self, timeout: float) -> list[WaitOutcome]:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the long-polls were still open after {timeout:g}s")
        return self.outcomes


def api_waiters(base_url: str) -> int | None:
    """The API's own count of waiters it holds (its /metrics), None if unreadable."""
    try:
        metrics = httpx.get(f"{base_url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return None
    found = WAITERS_GAUGE.search(metrics)
    return int(float(found.group(1))) if found else None


def wait_once(base_url: str, token: str, assessment_id: str, wait_seconds: float) -> WaitOutcome:
    """One long-poll, here and now (a retry after a fault)."""

    async def one() -> WaitOutcome:
        [outcome] = await poll_all(base_url, token, [assessment_id], wait_seconds=wait_seconds)
        return outcome

    return asyncio.run(one())


def ready(base_url: str) -> bool:
    """``GET /ready`` answers 200: database, Redis and broker all reachable."""
    try:
        return httpx.get(f"{base_url}/ready", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False
