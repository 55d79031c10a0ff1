"""The overview for open dashboards, computed at most once per owner per TTL.

Two hundred admins' dashboards refresh their overview from one query every
TTL_SECONDS, not two hundred: the streams of one owner share the figures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from assessment_store.http.ui.live_view import sse
from assessment_store.http.ui.render import render
from assessment_store.overview import Overview

TTL_SECONDS = 4.0


class OverviewCache:
    def __init__(self, compute: Callable[[str | None], Overview], ttl: float = TTL_SECONDS) -> None:
        self._compute = compute
        self._ttl = ttl
        self._figures: dict[str | None, tuple[float, Overview]] = {}
        self._locks: dict[str | None, asyncio.Lock] = {}
        self._messages: dict[str | None, tuple[Overview, str]] = {}
        self.computed = 0  # how many times it queried (tests and benchmarks read it)

    async def get(self, owner: str | None) -> Overview:
        """Fresh enough figures for ``owner`` (None: everyone's); store errors raise."""
        lock = self._locks.setdefault(owner, asyncio.Lock())
        async with lock:
            cached = self._figures.get(owner)
            if cached is not None and time.monotonic() - cached[0] < self._ttl:
                return cached[1]
            figures = await run_in_threadpool(self._compute, owner)
            self.computed += 1
            self._figures[owner] = (time.monotonic(), figures)
            self._messages.pop(owner, None)
            return figures

    async def message(self, owner: str | None) -> str:
        """The overview as the stream's SSE message, rendered once per figures."""
        figures = await self.get(owner)
        known = self._messages.get(owner)
        if known is None or known[0] is not figures:
            html = render("_overview.html", overview=figures)
            known = self._messages[owner] = (figures, sse("overview", {"html": html}))
        return known[1]
