"""``GET /ui/events``: the dashboard's live updates as server-sent events.

Each open page holds one stream and no database connection: the process's LiveFeed
reads every change once and hands the batch to each stream's queue, and the stream
keeps the part its principal may see (``owner``, as /v1) and its view wants:

- ``view=list`` (with the list's filters): every visible changed row, re-rendered,
  and new assessments the filters match (first page only);
- ``view=assessment&id=X``: that assessment's record and its new audit rows.

Every message's ``id`` is the feed's watermark. On reconnecting, the browser sends it
back as ``Last-Event-ID`` and the stream first replays every audit row above it from
the table, so a page that was away misses nothing (it may see a row twice: the page
applies a row only when its version is newer). A list also gets the overview every
OVERVIEW_SECONDS, computed once per owner for all its streams.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from assessment_store.errors import AssessmentStoreError, UnauthorizedError
from assessment_store.filter_match import in_view
from assessment_store.http.auth import Principal
from assessment_store.http.ui import session
from assessment_store.http.ui.overview_cache import OverviewCache
from assessment_store.http.ui.pages import filters_of, list_form
from assessment_store.http.ui.render import render
from assessment_store.live import ChangeBatch, LiveFeed
from assessment_store.models import AssessmentFilters

router = APIRouter(prefix="/ui", include_in_schema=False)

RETRY_MILLISECONDS = 1000
KEEPALIVE_SECONDS = 15.0
OVERVIEW_SECONDS = 5.0
QUEUE_BATCHES = 1000  # a stream this far behind is told to reload instead


@dataclass(frozen=True)
class View:
    """What one stream shows."""

    principal: Principal
    assessment_id: str | None  # one assessment's page, or a list
    filters: AssessmentFilters | None
    csrf: str
    search_errors: bool

    def message(self, batch: ChangeBatch) -> str | None:
        """The SSE message for ``batch``, or None when nothing in it concerns us."""
        visible = batch.visible_to(self.principal.owner)
        if self.assessment_id is not None:
            return self._record_message(visible)
        return self._list_message(visible)

    def _record_message(self, batch: ChangeBatch) -> str | None:
        found = batch.assessments.get(self.assessment_id or "")
        if found is None:
            return None
        entries = [e for e in batch.entries if e.assessment_id == found.assessment_id]
        record = render("_record.html", a=found, principal=self.principal, csrf=self.csrf)
        audit = [render("_audit_row.html", e=e) for e in entries]
        payload = {
            "records": [
                {
                    "assessmentId": found.assessment_id,
                    "version": found.version,
                    "state": found.state.value,
                    "html": record,
                    "audit": [
                        {"version": e.version_to, "html": h}
                        for e, h in zip(entries, audit, strict=True)
                    ],
                }
            ]
        }
        return sse("changes", payload, batch.watermark)

    def _list_message(self, batch: ChangeBatch) -> str | None:
        filters = self.filters
        if not batch.assessments or filters is None:
            return None
        created = {e.assessment_id for e in batch.entries if e.event == "create"}
        first_page = filters.cursor is None
        rows = []
        for assessment in batch.assessments.values():
            key = ("row", assessment.assessment_id, assessment.version)
            html = batch.rendered.get(key)
            if html is None:
                html = batch.rendered[key] = render("_row.html", a=assessment)
            insert = (
                first_page
                and assessment.assessment_id in created
                and in_view(filters, assessment, search_errors=self.search_errors)
            )
            rows.append(
                {
                    "assessmentId": assessment.assessment_id,
                    "version": assessment.version,
                    "state": assessment.state.value,
                    "createdAt": assessment.created_at.isoformat(),
                    "insert": insert,
                    "html": html,
                }
            )
        rows.sort(key=lambda r: (r["createdAt"], r["assessmentId"]))
        return sse("changes", {"rows": rows}, batch.watermark)


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


def _resume_from(request: Request) -> int:
    """Last-Event-ID (a reconnect) wins over the page's ``since`` (its first connect)."""
    for value in (request.headers.get("last-event-id"), request.query_params.get("since")):
        if value and value.isdigit():
            return int(value)
    return 0


@router.get("/events")
async def events(request: Request) -> Response:
    try:
        token = session.session_token(request)
        principal = session.principal_from_token(request, token)
        view = _view_of(request, principal)
    except UnauthorizedError:
        # 204 tells EventSource to stop reconnecting: the page shows "signed out".
        return Response(status_code=204, headers=session.SECURITY_HEADERS)
    except (AssessmentStoreError, RequestValidationError):
        return Response(status_code=204, headers=session.SECURITY_HEADERS)
    feed: LiveFeed = request.app.state.live_feed
    overviews: OverviewCache = request.app.state.overview_cache
    expires = time.monotonic() + session.seconds_left(token)
    stream = _stream(request, feed, overviews, view, _resume_from(request), expires)
    headers = {**session.SECURITY_HEADERS, "X-Accel-Buffering": "no"}
    return StreamingResponse(stream, media_type="text/event-stream", headers=headers)


def _view_of(request: Request, principal: Principal) -> View:
    query = request.query_params
    store = request.app.state.store
    search_errors = store.runtime.keys is None
    csrf = session.csrf_token(request)
    if query.get("view") == "assessment":
        return View(principal, query.get("id", ""), None, csrf, search_errors)
    filters = filters_of(list_form(request))
    if principal.owner is not None and filters.created_by not in (None, principal.owner):
        filters = filters.model_copy(update={"created_by": principal.owner})
    return View(principal, None, filters, csrf, search_errors)


async def _stream(
    request: Request,
    feed: LiveFeed,
    overviews: OverviewCache,
    view: View,
    after: int,
    expires: float,
) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[ChangeBatch | None] = asyncio.Queue()

    def sink(batch: ChangeBatch) -> None:  # on the feed's thread
        loop.call_soon_threadsafe(_offer, queue, batch)

    # Subscribed before the replay is read, so nothing falls between the two.
    handle = await run_in_threadpool(feed.subscribe, sink)
    try:
        yield f"retry: {RETRY_MILLISECONDS}\n\n"
        replayed = await run_in_threadpool(feed.replay, after)
        if replayed is None:
            yield sse("reload", {"reason": "too far behind"})
            return
        message = view.message(replayed)
        yield message or f"id: {replayed.watermark}\n\n"
        next_overview = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= expires:
                yield sse("signed-out", {"reason": "the token expired"})
                return
            if view.assessment_id is None and now >= next_overview:
                next_overview = now + OVERVIEW_SECONDS
                try:
                    figures = await overviews.get(view.principal.owner)
                except AssessmentStoreError:
                    pass  # the database is away: the figures shown stay, the rows resume
                else:
                    yield sse("overview", {"html": render("_overview.html", overview=figures)})
            timeout = min(KEEPALIVE_SECONDS, expires - now)
            if view.assessment_id is None:
                timeout = min(timeout, max(0.0, next_overview - now))
            try:
                batch = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if batch is None:
                yield sse("reload", {"reason": "too far behind"})
                return
            message = view.message(batch)
            if message is not None:
                yield message
    finally:
        handle.cancel()


def _offer(queue: asyncio.Queue[ChangeBatch | None], batch: ChangeBatch) -> None:
    """Queue a batch; past QUEUE_BATCHES the reader is told to reload (None)."""
    if queue.qsize() < QUEUE_BATCHES:
        queue.put_nowait(batch)
    elif queue.qsize() == QUEUE_BATCHES:
        queue.put_nowait(None)
