"""Browser tests: Debian's chromium (/usr/bin/chromium) driven by Playwright, and the
real system (an API process, workers, beat) the pages talk to.

The browser is the distribution's package, never Playwright's download
(``playwright install`` is never run; ops/test.sh installs chromium with apt-get when it
can). A missing browser fails the run, as a missing service does: never a skip.

Every page is guarded (tests/browser/guard.py): a console error, an uncaught exception or
a failed request fails the test at teardown, with the list. A failed test leaves a
screenshot in test-artifacts/screenshots/, and tests can take their own (``screenshot``).

The system fixtures are the acceptance suite's (tests/acceptance/conftest.py), imported
here, except the broker: the browser tests own Redis database 7 and flush it around
every test, as the acceptance tests own (and flush) database 9.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from assessment_store.config import Settings
from tests.acceptance.conftest import flushed_redis_database
from tests.acceptance.conftest import processes as processes
from tests.acceptance.conftest import producer as producer
from tests.acceptance.conftest import start_beat as start_beat
from tests.acceptance.conftest import start_worker as start_worker
from tests.acceptance.conftest import system_env as system_env
from tests.acceptance.conftest import system_settings as system_settings
from tests.acceptance.processes import ROOT, running_api
from tests.browser.guard import ConsoleGuard

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_MESSAGE = (
    f"the browser tests need Debian's chromium at {CHROMIUM}: "
    "run 'apt-get install -y chromium' as root"
)
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
VIEWPORT: ViewportSize = {"width": 1280, "height": 900}
BROWSER_REDIS_DB = 7  # the benchmark uses 8 and 10-15, the acceptance tests 9
JWT_SECRET = "browser-tests-secret-0123456789abcdefghij"

Screenshot = Callable[[Page, str], Path]

_reports = pytest.StashKey[dict[str, pytest.TestReport]]()
_after_call = pytest.StashKey[Callable[[pytest.TestReport], None]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keeps each phase's report on the item; at the end of the test's body, lets its
    page settle its guard and take the failure screenshot, before any fixture's
    teardown changes the page."""
    report = yield
    item.stash.setdefault(_reports, {})[report.when] = report
    if report.when == "call" and _after_call in item.stash:
        item.stash[_after_call](report)
    return report


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "page"


def screenshot_path(node_name: str, name: str) -> Path:
    return SCREENSHOTS / f"{_file_name(node_name)}-{_file_name(name)}.png"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's chromium, headless, for one test module."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(INSTALL_MESSAGE, pytrace=False)
    # Root cannot use chromium's sandbox. (Playwright passes --no-sandbox anyway unless
    # chromium_sandbox=True; said here so that it stays true.)
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=args
        )
    except BaseException:
        playwright.stop()
        raise
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()
        # Playwright's sync API runs an event loop in this thread; after a failed test
        # it has been seen to stay registered as running, and every later
        # asyncio.run() of the session (the fault tests') then refused to start.
        asyncio.events._set_running_loop(None)


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Screenshot:
    """``shot(page, name)`` saves a PNG of the page as
    test-artifacts/screenshots/<test>-<name>.png and returns its path."""
    node_name = request.node.name

    def shot(page: Page, name: str) -> Path:
        path = screenshot_path(node_name, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=path, full_page=True)
        return path

    return shot


@pytest.fixture
def page_guard() -> ConsoleGuard:
    """The guard of this test's ``browser_page`` (for a test that causes an outage)."""
    return ConsoleGuard()


@pytest.fixture
def browser_page(
    chromium: Browser,
    request: pytest.FixtureRequest,
    screenshot: Screenshot,
    page_guard: ConsoleGuard,
) -> Iterator[Page]:
    """A fresh context (1280x900) and page; the test fails if the page showed a console
    error, an uncaught exception or a failed request (the live stream's abort on
    navigation excepted)."""
    context = chromium.new_context(viewport=VIEWPORT)
    guard = page_guard
    guard.watch(context)
    page = context.new_page()

    def after_call(report: pytest.TestReport) -> None:
        guard.settle()
        guard.freeze()
        if report.failed and not page.is_closed():
            try:
                path = screenshot(page, "failure")
            except PlaywrightError as exc:
                report.sections.append(("browser", f"no failure screenshot: {exc}"))
            else:
                report.sections.append(("browser", f"failure screenshot: {path}"))

    request.node.stash[_after_call] = after_call
    try:
        yield page
    finally:
        del request.node.stash[_after_call]
        guard.freeze()  # the body never ran (a setup error) or was seen by after_call
        context.close()
    if guard.problems:
        pytest.fail(guard.report(), pytrace=False)


@pytest.fixture
def broker_url(base_settings: Settings) -> Iterator[str]:
    """The browser tests' own Redis database, empty at the start and end of each test
    (replaces the acceptance suite's database 9 in its fixtures)."""
    yield from flushed_redis_database(base_settings, BROWSER_REDIS_DB)


@pytest.fixture
def api_url(system_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """A real API process (uvicorn) on a free port, with this test's database and
    broker; its base URL. Its JWT secret is JWT_SECRET."""
    with running_api(system_env, tmp_path, JWT_SECRET) as url:
        yield url
