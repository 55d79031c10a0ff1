"""The dashboard in a real browser, against a real API process, worker and database.

Each test signs in through the page as an operator would, and fails on any console
error (the ``browser_page`` guard). Screenshots land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
from playwright.sync_api import Page, Route, expect

from assessment_store import AssessmentState, AssessmentStore
from assessment_store.demo.processes import api_server, free_port
from assessment_store.http.auth import Role, issue_token
from tests.acceptance.processes import ROOT, CeleryProcess
from tests.browser.conftest import JWT_SECRET, Screenshot
from tests.browser.guard import ConsoleGuard
from tests.factories import request

# Generous: a loaded CI machine; the live path itself takes milliseconds.
LIVE = 15_000


def token_for(subject: str, role: Role) -> str:
    return issue_token(JWT_SECRET, subject, role, timedelta(hours=1))


def sign_in(page: Page, api_url: str, token: str, path: str = "/ui") -> None:
    page.goto(api_url + path)
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.fill("textarea[name=token]", token)
    page.click("form[action='/ui/login'] button[type=submit]")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live", timeout=LIVE)


def row(page: Page, assessment_id: str) -> str:
    return f"tr[data-assessment-id='{assessment_id}']"


def mark_document(page: Page) -> None:
    """A marker that a reload or navigation would wipe: proves updates came live."""
    page.evaluate("window.__sameDocument = true")


def same_document(page: Page) -> bool:
    return bool(page.evaluate("window.__sameDocument === true"))


def test_sign_in_filter_open_and_watch_a_running_assessment_complete(
    api_url: str,
    browser_page: Page,
    producer: AssessmentStore,
    start_worker: Callable[..., CeleryProcess],
    screenshot: Screenshot,
    tmp_path: Path,
) -> None:
    page = browser_page
    gate = tmp_path / "gate"
    quick = producer.batch_create_assessments(
        [request(assessment_type="noop", server_name=f"web-{i}.example") for i in range(3)],
        created_by="team-a",
    )
    gated = producer.create_assessment(
        request(assessment_type="gated", server_name=f"gate:{gate}"), created_by="team-a"
    )
    failing = producer.create_assessment(
        request(assessment_type="always_fails", server_name="db-7.example"), created_by="team-b"
    )
    start_worker("w1")
    sign_in(page, api_url, token_for("ops", Role.ADMIN))
    # Every assessment is listed, the quick ones reach completed live.
    for assessment_id in quick:
        expect(page.locator(row(page, assessment_id))).to_have_attribute(
            "data-state", "completed", timeout=LIVE
        )
    expect(page.locator(row(page, failing))).to_have_attribute("data-state", "failed", timeout=LIVE)
    expect(page.locator(f"{row(page, failing)} td.message")).to_contain_text("attempt 1 failed")
    # The overview follows live too (it is pushed every few seconds).
    expect(page.locator("#overview [data-count-state=completed] .value")).to_have_text(
        "3", timeout=LIVE
    )
    screenshot(page, "list")

    # Filtering by type keeps the view in the URL and shows only that type.
    page.fill("#filters input[name=type]", "gated")
    page.click("#filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"[?&]type=gated(&|$)"))
    expect(page.locator("#rows tr")).to_have_count(1)
    expect(page.locator(row(page, gated))).to_be_visible()
    # A shared link opens the same view.
    page.goto(f"{api_url}/ui?q=web-1")
    expect(page.locator("#rows tr")).to_have_count(1)
    expect(page.locator(f"{row(page, quick[1])} td.server")).to_have_text("web-1.example")

    # The gated one's page: running at the gate, then completed without a reload.
    page.goto(f"{api_url}/ui/assessments/{gated}")
    expect(page.locator("#live-status")).to_have_attribute("data-status", "live", timeout=LIVE)
    record = page.locator("#record")
    expect(record).to_have_attribute("data-state", "processing", timeout=LIVE)
    expect(record).to_contain_text("at the gate")
    mark_document(page)
    screenshot(page, "running")
    gate.touch()
    expect(record).to_have_attribute("data-state", "completed", timeout=LIVE)
    expect(page.locator("#audit tbody tr[data-event=complete]")).to_have_count(1, timeout=LIVE)
    assert same_document(page), "the page reloaded instead of updating live"
    events = page.locator("#audit tbody tr").evaluate_all("rows => rows.map(r => r.dataset.event)")
    assert events[0] == "create" and events[-1] == "complete"
    assert "start" in events
    versions = page.locator("#audit tbody tr").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.version))"
    )
    assert versions == list(range(1, len(versions) + 1)), "the chain shows every version once"
    expect(page.locator("#record pre.result")).to_contain_text('"gated": true')
    screenshot(page, "completed")


def test_new_assessments_appear_live_on_the_first_page(
    api_url: str, browser_page: Page, producer: AssessmentStore, screenshot: Screenshot
) -> None:
    page = browser_page
    sign_in(page, api_url, token_for("ops", Role.ADMIN), "/ui?type=noop")
    expect(page.locator("#empty")).to_be_visible()
    mark_document(page)
    wanted = producer.create_assessment(request(assessment_type="noop"), created_by="team-a")
    other = producer.create_assessment(request(assessment_type="sleepy"), created_by="team-a")
    expect(page.locator(row(page, wanted))).to_have_attribute("data-state", "pending", timeout=LIVE)
    # The filter holds for live rows too.
    expect(page.locator("#rows tr")).to_have_count(1)
    assert page.locator(row(page, other)).count() == 0
    assert same_document(page)


def test_cancel_a_pending_one_and_see_a_stale_click_refused(
    api_url: str, browser_page: Page, producer: AssessmentStore, screenshot: Screenshot
) -> None:
    page = browser_page
    # No worker: these stay pending.
    first, second = producer.batch_create_assessments(
        [request(assessment_type="noop"), request(assessment_type="noop")], created_by="team-a"
    )
    sign_in(page, api_url, token_for("team-a", Role.PRODUCER), f"/ui/assessments/{first}")
    page.fill("#record input[name=reason]", "not needed any more")
    page.click("#record button[value=cancel]")
    expect(page.locator("#flash")).to_contain_text("cancelled")
    expect(page.locator("#record")).to_have_attribute("data-state", "cancelled")
    cancel_row = page.locator("#audit tbody tr[data-event=cancel]")
    expect(cancel_row).to_contain_text("team-a")
    expect(cancel_row).to_contain_text("not needed any more")
    assert producer.get_state(first).state is AssessmentState.CANCELLED
    screenshot(page, "cancelled")

    # A page whose live stream is held up shows a stale version; its click is refused
    # by the compare-and-set, plainly, and nothing is overridden.
    page.route("**/ui/events*", _hold_forever)
    page.goto(f"{api_url}/ui/assessments/{second}")
    expect(page.locator("#record button[value=cancel]")).to_be_visible()
    producer.cancel_assessment(second, "cancelled elsewhere", changed_by="someone-else")
    page.click("#record button[value=cancel]")
    expect(page.locator("#flash")).to_have_attribute("data-code", "VERSION_CONFLICT")
    trail = producer.get_audit_trail(second)
    assert [e.changed_by for e in trail if e.event == "cancel"] == ["someone-else"]
    screenshot(page, "version-conflict")


def _hold_forever(route: Route) -> None:
    """A stream that ends at once and asks to be retried in ten minutes: the page
    stays as it was rendered, with no error in the console."""
    route.fulfill(
        status=200, headers={"Content-Type": "text/event-stream"}, body="retry: 600000\n\n"
    )


def test_retry_a_dead_letter_and_watch_it_complete(
    api_url: str,
    browser_page: Page,
    producer: AssessmentStore,
    start_worker: Callable[..., CeleryProcess],
    screenshot: Screenshot,
) -> None:
    page = browser_page
    dead = producer.create_assessment(request(assessment_type="noop"), created_by="team-a")
    producer.start_processing(dead, "test-worker")
    producer.fail_assessment(dead, "target refused: permanent", permanent=True)
    assert producer.get_state(dead).is_finished
    sign_in(page, api_url, token_for("team-a", Role.PRODUCER), f"/ui/assessments/{dead}")
    expect(page.locator("#record .dead")).to_be_visible()
    screenshot(page, "dead-letter")
    start_worker("w1")
    page.click("#record button[value=retry]")
    expect(page.locator("#flash")).to_contain_text("back to pending")
    mark_document(page)
    expect(page.locator("#record")).to_have_attribute("data-state", "completed", timeout=LIVE)
    # The record is the row as read with a batch; its last audit row may come with the
    # next batch (committed between the two reads): wait for it, as a reader would.
    expect(page.locator("#audit tbody tr[data-event=complete]")).to_have_count(1, timeout=LIVE)
    assert same_document(page)
    events = page.locator("#audit tbody tr").evaluate_all("rows => rows.map(r => r.dataset.event)")
    assert events[:4] == ["create", "start", "fail", "retry"]
    assert events[-1] == "complete"
    screenshot(page, "retried")


def test_a_viewer_sees_its_assessments_and_no_buttons(
    api_url: str, browser_page: Page, producer: AssessmentStore, screenshot: Screenshot
) -> None:
    page = browser_page
    own = producer.create_assessment(request(assessment_type="noop"), created_by="auditor")
    others = producer.create_assessment(request(assessment_type="noop"), created_by="team-b")
    viewer = token_for("auditor", Role.VIEWER)
    sign_in(page, api_url, viewer)
    expect(page.locator(row(page, own))).to_be_visible()
    assert page.locator(row(page, others)).count() == 0, "another creator's row is shown"
    page.click(f"{row(page, own)} td.id a")
    expect(page.locator("#record")).to_have_attribute("data-state", "pending")
    expect(page.locator("button[name=action]")).to_have_count(0)
    screenshot(page, "viewer")
    # Another creator's page is not found, as in the API (asked outside the page: a
    # 404 document is a console error in Chromium).
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    hidden = httpx.get(f"{api_url}/ui/assessments/{others}", cookies=cookies)
    assert hidden.status_code == 404
    assert "not found" in hidden.text.lower() and others in hidden.text
    # And the API refuses the viewer's action anyway.
    refused = httpx.post(
        f"{api_url}/v1/assessments/{own}/cancel", headers={"Authorization": f"Bearer {viewer}"}
    )
    assert refused.status_code == 403
    assert producer.get_state(own).state is AssessmentState.PENDING


def test_a_page_reconnects_after_the_api_is_killed_and_misses_nothing(
    system_env: dict[str, str],
    tmp_path: Path,
    browser_page: Page,
    page_guard: ConsoleGuard,
    producer: AssessmentStore,
    screenshot: Screenshot,
) -> None:
    page = browser_page
    port = free_port()
    env = {**system_env, "ASSESSMENT_STORE_JWT_SECRET": JWT_SECRET}
    api = api_server("api", env, tmp_path, port, cwd=ROOT)
    api.start()
    api.wait_ready()
    try:
        before, doomed = producer.batch_create_assessments(
            [request(assessment_type="noop"), request(assessment_type="noop")],
            created_by="team-a",
        )
        sign_in(page, f"http://127.0.0.1:{port}", token_for("ops", Role.ADMIN))
        expect(page.locator(row(page, doomed))).to_be_visible()
        mark_document(page)
        with page_guard.outage():
            api.kill()  # SIGKILL: the stream is cut mid-flight, as in a crash
            expect(page.locator("#live-status")).not_to_have_attribute(
                "data-status", "live", timeout=LIVE
            )
            # Changes while no API serves the page: a cancel and a new assessment.
            producer.cancel_assessment(doomed, "while the API was down", changed_by="ops")
            added = producer.create_assessment(request(assessment_type="noop"))
            api = api_server("api-again", env, tmp_path, port, cwd=ROOT)
            api.start()
            api.wait_ready()
            expect(page.locator("#live-status")).to_have_attribute(
                "data-status", "live", timeout=LIVE
            )
        # The replay from Last-Event-ID brought both, in the same document.
        expect(page.locator(row(page, doomed))).to_have_attribute(
            "data-state", "cancelled", timeout=LIVE
        )
        expect(page.locator(row(page, added))).to_have_attribute("data-state", "pending")
        expect(page.locator(row(page, before))).to_have_attribute("data-state", "pending")
        assert same_document(page), "the page reloaded instead of resuming its stream"
        screenshot(page, "resumed")
    finally:
        page.goto("about:blank")  # no stream left open: the API stops at once
        api.stop()
