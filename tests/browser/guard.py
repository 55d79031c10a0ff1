"""What a browser test's page must never show: console errors, uncaught exceptions and
failed requests. The ``browser_page`` fixture fails a test that recorded any."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from playwright.sync_api import BrowserContext, ConsoleMessage, Request, WebError
from playwright.sync_api import Error as PlaywrightError

# The dashboard's live stream is aborted whenever its page navigates away or closes:
# that failure is the normal end of the stream, not a problem.
EVENT_STREAM_PATH = "/ui/events"
ABORTED = "net::ERR_ABORTED"


def is_expected_failure(url: str, failure: str | None) -> bool:
    return failure == ABORTED and EVENT_STREAM_PATH in url


class ConsoleGuard:
    """Records the problems of every page of a browser context, from the moment it
    watches the context until it is frozen."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        # What the live stream reported during an outage() a test caused on purpose.
        self.tolerated: list[str] = []
        self.frozen = False
        self._outage = False
        self._contexts: list[BrowserContext] = []

    def watch(self, context: BrowserContext) -> None:
        context.on("console", self._on_console)
        context.on("weberror", self._on_web_error)
        context.on("requestfailed", self._on_request_failed)
        self._contexts.append(context)

    def settle(self) -> None:
        """Deliver what the pages reported so far: a round trip to each open page (the
        sync API dispatches browser events only while it talks to the browser)."""
        for context in self._contexts:
            for page in context.pages:
                if page.is_closed():
                    continue
                # Navigating or crashed: nothing more will come from that page.
                with contextlib.suppress(PlaywrightError):
                    page.evaluate("0")

    def freeze(self) -> None:
        """Stop recording (at the end of a test's body: what fixtures' teardowns do to
        the page afterwards, e.g. stopping the API it streams from, is not the test's)."""
        self.frozen = True

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """While the test has the API down on purpose, the live stream's failed
        reconnects are expected: they are kept in ``tolerated``, not ``problems``."""
        self.settle()
        self._outage = True
        try:
            yield
        finally:
            self.settle()
            self._outage = False

    def report(self) -> str:
        return f"{len(self.problems)} browser problem(s):\n  " + "\n  ".join(self.problems)

    def _record(self, problem: str) -> None:
        if self.frozen:
            return
        if self._outage and EVENT_STREAM_PATH in problem:
            self.tolerated.append(problem)
        else:
            self.problems.append(problem)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        where = message.location
        at = f" (at {where['url']}:{where['lineNumber']})" if where.get("url") else ""
        self._record(f"console error: {message.text}{at}")

    def _on_web_error(self, error: WebError) -> None:
        exception = error.error
        stack = (exception.stack or "").strip().splitlines()
        at = f" ({stack[1].strip()})" if len(stack) > 1 else ""
        self._record(f"uncaught exception: {exception.name}: {exception.message}{at}")

    def _on_request_failed(self, request: Request) -> None:
        if is_expected_failure(request.url, request.failure):
            return
        self._record(f"request failed: {request.method} {request.url}: {request.failure}")
