"""``GET /ui/events``: the dashboard's live updates as server-sent events.

Each open page holds one stream and no database connection: the process's LiveFeed
reads every change once and the StreamHub hands the batch to each stream's queue;
the stream keeps the part its principal may see (``owner``, as /v1) and its view
wants (``live_view``):

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

import logging
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from assessment_store.errors import AssessmentStoreError, UnauthorizedError
from assessment_store.http.auth import Principal
from assessment_store.http.ui import session
from assessment_store.http.ui.live_view import View, sse
from assessment_store.http.ui.overview_cache import OverviewCache
from assessment_store.http.ui.pages import filters_of, list_form
from assessment_store.http.ui.stream_hub import StreamHub, take
from assessment_store.live import LiveFeed
from assessment_store.outages import OutageLog

router = APIRouter(prefix="/ui", include_in_schema=False)
REPLAY_OUTAGES = OutageLog(logging.getLogger("assessment_store.http.ui"))

RETRY_MILLISECONDS = 1000
KEEPALIVE_SECONDS = 15.0
OVERVIEW_SECONDS = 5.0


def _resume_from(request: Request) -> int:
    """Last-Event-ID (a reconnect) wins over the page's ``since`` (its first connect)."""
    for value in (request.headers.get("last-event-id"), request.query_params.get("since")):
        if value and value.isascii() and value.isdigit():
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
    hub: StreamHub = request.app.state.stream_hub
    overviews: OverviewCache = request.app.state.overview_cache
    expires = time.monotonic() + session.seconds_left(token)
    stream = _stream(hub, feed, overviews, view, _resume_from(request), expires)
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
    hub: StreamHub,
    feed: LiveFeed,
    overviews: OverviewCache,
    view: View,
    after: int,
    expires: float,
) -> AsyncIterator[str]:
    # Subscribed before the replay is read, so nothing falls between the two (what
    # both hold is applied once: the page keeps the newer version).
    queue = await hub.open()
    try:
        yield f"retry: {RETRY_MILLISECONDS}\n\n"
        try:
            replayed = await run_in_threadpool(feed.replay, after)
        except AssessmentStoreError as exc:
            # The database is away: end this stream quietly; the page reconnects in
            # RETRY_MILLISECONDS and replays from the same place.
            REPLAY_OUTAGES.failed("dashboard_replay_failed", exc)
            return
        REPLAY_OUTAGES.succeeded("dashboard_replay_failed")
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
                    overview: str | None = await overviews.message(view.principal.owner)
                except AssessmentStoreError:
                    overview = None  # the database is away: the figures shown stay
                if overview is not None:
                    yield overview
            timeout = min(KEEPALIVE_SECONDS, expires - now)
            if view.assessment_id is None:
                timeout = min(timeout, max(0.0, next_overview - now))
            try:
                batch = await take(queue, timeout)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if batch is None:
                yield sse("reload", {"reason": "too far behind"})
                return
            message = view.message(batch)
            # Nothing for this page: the id still moves on, so that a reconnect
            # replays from here, not from before every change it was not shown.
            yield message if message is not None else f"id: {batch.watermark}\n\n"
    finally:
        await hub.close(queue)
