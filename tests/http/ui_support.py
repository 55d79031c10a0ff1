"""Shared by the dashboard's tests (tests/http/test_ui_*.py): the app on the test's real
store and database, signed-in clients, a small HTML reader, a real uvicorn server in a
thread for the live stream, and a server-sent-events reader.

The fixtures are imported by the test modules that use them
(``from tests.http.ui_support import ui_app as ui_app``)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
import httpx2
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from assessment_store.http.app import create_app
from assessment_store.http.auth import Role, issue_token
from assessment_store.http.ui.session import SESSION_COOKIE
from assessment_store.service import AssessmentStore
from tests.http.conftest import SECRET
from tests.waiting import wait_until

BASE_URL = "http://testserver"
VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta"})
VOID |= {"source", "track", "wbr"}


def token(subject: str, role: Role, ttl: timedelta = timedelta(hours=1)) -> str:
    return issue_token(SECRET, subject, role, ttl)


# -- HTML -------------------------------------------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The text inside, whitespace collapsed."""
        return " ".join("".join(self.parts).split())

    def get(self, name: str) -> str:
        return self.attrs.get(name, "")


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v if v is not None else "" for k, v in attrs})
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, {k: v if v is not None else "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index].tag == tag:
                del self._open[index:]
                return

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.parts.append(data)


class Page:
    """A parsed page: its elements in document order, found by tag and attributes."""

    def __init__(self, html: str) -> None:
        collector = _Collector()
        collector.feed(html)
        collector.close()
        self.html = html
        self.elements = collector.elements

    def all(self, tag: str | None = None, **attrs: str | None) -> list[Element]:
        """Elements of ``tag`` whose attributes have these values (None: present)."""
        found = []
        for element in self.elements:
            if tag is not None and element.tag != tag:
                continue
            wanted = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
            if all(
                name in element.attrs and (value is None or element.attrs[name] == value)
                for name, value in wanted.items()
            ):
                found.append(element)
        return found

    def one(self, tag: str | None = None, **attrs: str | None) -> Element:
        found = self.all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, [e.attrs for e in found])
        return found[0]

    def by_id(self, element_id: str) -> Element | None:
        found = self.all(id=element_id)
        return found[0] if found else None

    def row_ids(self) -> list[str]:
        """The assessment ids of the list's rows, top to bottom."""
        return [e.get("data-assessment-id") for e in self.all("tr", data_assessment_id=None)]

    def csrf(self) -> str:
        return self.all("input", name="csrf")[0].get("value")

    def action_buttons(self) -> list[str]:
        return [e.get("value") for e in self.all("button", name="action")]


def page(response: httpx2.Response) -> Page:
    assert response.headers["content-type"].startswith("text/html"), response.headers
    return Page(response.text)


# -- clients ----------------------------------------------------------------------------


SignIn = Callable[..., TestClient]


def sign_in(client: TestClient, jwt: str, next_path: str = "/ui") -> httpx2.Response:
    response = client.post(
        "/ui/login", data={"token": jwt, "next": next_path}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    return response


@pytest.fixture
def ui_app(store: AssessmentStore) -> Iterator[FastAPI]:
    """The whole app (API and dashboard) on the test's store; its lifespan runs once,
    in ``ui`` (stopping the live feed and closing the store at the end)."""
    app = create_app(store, SECRET, max_body_bytes=64 * 1024)
    yield app
    app.state.live_feed.close()


@pytest.fixture
def ui(ui_app: FastAPI) -> Iterator[TestClient]:
    """A client nobody has signed in on yet."""
    with TestClient(ui_app, base_url=BASE_URL) as client:
        yield client


@pytest.fixture
def signed_in(ui_app: FastAPI, ui: TestClient) -> Iterator[SignIn]:
    """``signed_in(subject, role)``: a client of its own (cookie jar) signed in."""
    clients: list[TestClient] = []

    def make(subject: str, role: Role, ttl: timedelta = timedelta(hours=1)) -> TestClient:
        client = TestClient(ui_app, base_url=BASE_URL)
        clients.append(client)
        sign_in(client, token(subject, role, ttl))
        return client

    yield make
    for client in clients:
        client.close()


# -- a real server, for the stream --------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    app: FastAPI

    def cookie(self, jwt: str) -> dict[str, str]:
        return {"Cookie": f"{SESSION_COOKIE}={jwt}"}


@pytest.fixture
def live_server(store: AssessmentStore) -> Iterator[LiveServer]:
    """The app served by uvicorn in a thread, on a port of its own."""
    app = create_app(store, SECRET, max_body_bytes=64 * 1024)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=15, message="uvicorn did not start")
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


@dataclass(frozen=True)
class Event:
    event: str  # "" for a message of an id alone
    id: int | None
    data: Any


class EventStream:
    """Reads one SSE response message by message (comments and bare retry skipped)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()
        self.seen: list[Event] = []
        self.versions: dict[str, int] = {}  # the newest version seen of each assessment

    def next(self) -> Event:
        event, event_id = "", None
        data: list[str] = []
        while True:
            line = next(self._lines)
            if line == "":
                if event or event_id is not None or data:
                    found = Event(event, event_id, json.loads("\n".join(data)) if data else None)
                    self.seen.append(found)
                    for row in changes_of(found):
                        known = self.versions.get(row["assessmentId"], 0)
                        self.versions[row["assessmentId"]] = max(known, row["version"])
                    return found
                continue
            if line.startswith(":") or line.startswith("retry:"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "id":
                event_id = int(value)
            elif name == "data":
                data.append(value)

    def until(self, condition: Callable[[Event], bool], *, timeout: float = 20.0) -> Event:
        """The first message that meets ``condition``; AssertionError after ``timeout``
        (a list's stream sends its overview every few seconds, so reads return)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.next()
            if condition(found):
                return found
        raise AssertionError(f"no such message within {timeout}s; saw {self.seen!r:.3000}")

    def until_version(self, assessment_id: str, version: int, *, timeout: float = 20.0) -> None:
        """Read on until a message (this one or an earlier) showed ``assessment_id`` at
        ``version`` or later."""
        if self.versions.get(assessment_id, 0) < version:
            self.until(lambda _: self.versions.get(assessment_id, 0) >= version, timeout=timeout)


def changes_of(event: Event) -> list[dict[str, Any]]:
    """The rows (list view) or records (assessment view) of a ``changes`` message."""
    if event.event != "changes":
        return []
    data: dict[str, Any] = event.data
    rows: list[dict[str, Any]] = data.get("rows", []) + data.get("records", [])
    return rows


def mentions(event: Event, assessment_id: str) -> bool:
    return any(row["assessmentId"] == assessment_id for row in changes_of(event))
