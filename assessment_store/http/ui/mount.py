"""Mounting the dashboard on the API app."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from assessment_store.http.ui import pages, stream
from assessment_store.http.ui.overview_cache import OverviewCache
from assessment_store.http.ui.render import STATIC
from assessment_store.http.ui.stream_hub import StreamHub
from assessment_store.service import AssessmentStore


def install(app: FastAPI, store: AssessmentStore) -> None:
    """Mount the dashboard on ``app``; its live feed starts with the first open page
    (close it with ``app.state.live_feed.close()``)."""
    app.state.live_feed = store.open_live_feed()
    app.state.stream_hub = StreamHub(app.state.live_feed)
    app.state.overview_cache = OverviewCache(lambda owner: store.get_overview(owner=owner))
    app.include_router(pages.router)
    app.include_router(stream.router)
    app.mount("/ui/static", _Assets(directory=STATIC), name="ui-static")


class _Assets(StaticFiles):
    """The dashboard's script and stylesheet, never sniffed as another type."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
