"""The browser infrastructure itself: Debian's chromium launches, a page renders and
can be photographed, and the guard records what it must (and ignores the live stream's
abort on navigation), on pages served by a small local server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request, expect

from tests.browser.conftest import VIEWPORT, Screenshot
from tests.browser.guard import ConsoleGuard
from tests.waiting import wait_until

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

BROKEN = b"""<!doctype html><html><body><p id=x>broken</p>
<img src="/missing.png"><img src="/drop.png">
<script>console.error("x"); setTimeout(() => { throw new Error("boom"); }, 0);</script>
</body></html>"""

STREAMING = b"""<!doctype html><html><body><p id=ui>waiting</p><p id=feed>waiting</p>
<script>
for (const [id, path] of [["ui", "/ui/events"], ["feed", "/feed/events"]]) {
  new EventSource(path).onmessage = (e) => { document.getElementById(id).textContent = e.data; };
}
</script></body></html>"""

PAGES = {"/broken": BROKEN, "/streaming": STREAMING, "/other": b"<p>other</p>"}


class _Site(ThreadingHTTPServer):
    daemon_threads = True
    closing = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a browser hanging up on a stream is expected here


class _Handler(BaseHTTPRequestHandler):
    server: _Site

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.endswith("/events"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(b"data: live\n\n")
            self.wfile.flush()
            self.server.closing.wait()  # an endless stream, until the browser leaves
        elif self.path == "/favicon.ico":  # chromium asks on its own; a 404 is an error
            self.send_response(204)
            self.end_headers()
        elif self.path == "/drop.png":
            self.close_connection = True  # no response at all
        elif self.path in PAGES:
            body = PAGES[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = _Site(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.closing.set()
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    """A context without browser_page's guard, for tests of the guard itself."""
    context = chromium.new_context(viewport=VIEWPORT)
    yield context
    context.close()


def settled(guard: ConsoleGuard, condition: Callable[[], bool]) -> Callable[[], bool]:
    """``condition`` after the browser's latest events were delivered."""

    def check() -> bool:
        guard.settle()
        return condition()

    return check


def test_a_page_renders_in_chromium_and_can_be_photographed(
    browser_page: Page, screenshot: Screenshot
) -> None:
    browser_page.set_content("<html><body><p id=x>ok</p></body></html>")

    expect(browser_page.locator("#x")).to_have_text("ok")
    path = screenshot(browser_page, "rendered page")
    assert path.name == "test_a_page_renders_in_chromium_and_can_be_photographed-rendered_page.png"
    assert path.read_bytes().startswith(PNG_SIGNATURE)


def test_the_guard_records_console_errors_uncaught_exceptions_and_failed_requests(
    context: BrowserContext, site: str
) -> None:
    guard = ConsoleGuard()
    guard.watch(context)
    page = context.new_page()

    page.goto(f"{site}/broken")

    expected = [
        "console error: x",
        "uncaught exception: Error: boom",
        f"request failed: GET {site}/drop.png: net::ERR_EMPTY_RESPONSE",
        "console error: Failed to load resource: the server responded with a status of 404",
    ]

    def all_recorded() -> bool:
        return all(any(p.startswith(e) for p in guard.problems) for e in expected)

    wait_until(settled(guard, all_recorded), timeout=30, message=lambda: guard.report())
    assert guard.report().startswith(f"{len(guard.problems)} browser problem(s):")

    # Once frozen, it records nothing more.
    recorded = list(guard.problems)
    guard.freeze()
    page.evaluate("console.error('after the test')")
    guard.settle()
    assert guard.problems == recorded


def test_the_guard_ignores_only_the_live_streams_abort_on_navigation(
    context: BrowserContext, site: str
) -> None:
    guard = ConsoleGuard()
    guard.watch(context)
    failed: list[Request] = []

    # (A builtin such as failed.append cannot be a Playwright handler.)
    def on_failed(request: Request) -> None:
        failed.append(request)

    context.on("requestfailed", on_failed)
    page = context.new_page()
    page.goto(f"{site}/streaming")
    expect(page.locator("#ui")).to_have_text("live")
    expect(page.locator("#feed")).to_have_text("live")

    page.goto(f"{site}/other")

    wait_until(
        settled(guard, lambda: len(failed) == 2),
        timeout=30,
        message=lambda: f"both streams should be aborted: {[r.url for r in failed]}",
    )
    assert sorted((r.url, r.failure) for r in failed) == [
        (f"{site}/feed/events", "net::ERR_ABORTED"),
        (f"{site}/ui/events", "net::ERR_ABORTED"),
    ]
    assert guard.problems == [f"request failed: GET {site}/feed/events: net::ERR_ABORTED"]
