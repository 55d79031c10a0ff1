"""The dashboard's pages on the real store: sign-in and out, who sees what (as /v1),
the cancel and retry forms with their one-time messages, and the list's URL filters
and keyset pages."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from assessment_store.http.auth import Role, issue_token
from assessment_store.http.ui.flash import FLASH_COOKIE
from assessment_store.http.ui.session import SESSION_COOKIE
from assessment_store.models import Assessment, AssessmentFilters
from assessment_store.service import AssessmentStore
from assessment_store.states import AssessmentState
from tests.factories import request
from tests.http.conftest import SECRET
from tests.http.ui_support import (
    Page,
    SignIn,
    page,
    token,
)
from tests.http.ui_support import signed_in as signed_in
from tests.http.ui_support import ui as ui
from tests.http.ui_support import ui_app as ui_app


def set_cookies(response: httpx2.Response) -> dict[str, SimpleCookie]:
    """The response's Set-Cookie headers by cookie name, parsed."""
    found: dict[str, SimpleCookie] = {}
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            found[name] = cookie
    return found


def raw_set_cookie(response: httpx2.Response, name: str) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    return headers[0]


def location(response: httpx2.Response) -> tuple[str, dict[str, list[str]]]:
    assert response.status_code == 303, (response.status_code, response.text)
    parts = urlsplit(response.headers["location"])
    assert not parts.scheme and not parts.netloc, response.headers["location"]
    return parts.path, parse_qs(parts.query)


def create(store: AssessmentStore, owner: str, **fields: object) -> str:
    return store.create_assessment(request(**fields), created_by=owner)


def finished(store: AssessmentStore, owner: str, **fields: object) -> Assessment:
    assessment_id = create(store, owner, **fields)
    store.start_processing(assessment_id, "w1")
    return store.complete_assessment(assessment_id, {"ok": True})


def dead_letter(store: AssessmentStore, owner: str, **fields: object) -> Assessment:
    """Failed with its automatic retries used up (as tests/integration/test_transitions)."""
    assessment_id = create(store, owner, **fields)
    store.start_processing(assessment_id, "w0")
    got = store.fail_assessment(assessment_id, "boom 0")
    for attempt in range(1, store.settings.max_retries + 1):
        store.retry_assessment(assessment_id)
        store.start_processing(assessment_id, f"w{attempt}")
        got = store.fail_assessment(assessment_id, f"boom {attempt}")
    assert got.state is AssessmentState.FAILED and got.next_retry_at is None
    assert got.retry_count == store.settings.max_retries
    return got


def act(
    client: TestClient, assessment_id: str, action: str, **fields: str
) -> tuple[httpx2.Response, Page]:
    """Post the action's form (csrf from the page unless given), follow the redirect."""
    if "csrf" not in fields:
        fields["csrf"] = page(client.get("/ui")).csrf()
    posted = client.post(
        f"/ui/assessments/{assessment_id}/{action}", data=fields, follow_redirects=False
    )
    path, _ = location(posted)
    assert path == f"/ui/assessments/{assessment_id}"
    landed = client.get(path)
    return posted, Page(landed.text)


def flash_of(shown: Page) -> tuple[str, str, str]:
    """(kind, code, text) of the page's one-time message."""
    element = shown.by_id("flash")
    assert element is not None, shown.html[-2000:]
    kind = next(c for c in element.get("class").split() if c.startswith("flash-"))
    return kind.removeprefix("flash-"), element.get("data-code"), element.text


# -- signing in and out -------------------------------------------------------------------


def test_a_page_without_a_session_redirects_to_sign_in_with_the_way_back(
    ui: TestClient,
) -> None:
    for path in ("/ui", "/ui?state=failed&q=db", "/ui/assessments/some-id"):
        response = ui.get(path, follow_redirects=False)
        assert location(response) == ("/ui/login", {"next": [path]})
        form = page(ui.get(response.headers["location"]))
        assert form.one("input", name="next").get("value") == path
        assert form.one("textarea", name="token").text == ""


def test_signing_in_keeps_the_token_in_a_strict_http_only_cookie_for_its_life(
    ui: TestClient,
) -> None:
    for ttl in (timedelta(hours=1), timedelta(minutes=10)):
        ui.cookies.clear()
        jwt = token("alice", Role.PRODUCER, ttl)
        response = ui.post("/ui/login", data={"token": jwt, "next": "/ui"}, follow_redirects=False)
        assert location(response) == ("/ui", {})
        header = raw_set_cookie(response, SESSION_COOKIE)
        cookie = set_cookies(response)[SESSION_COOKIE][SESSION_COOKIE]
        assert cookie.value == jwt
        assert cookie["httponly"] is True
        assert cookie["samesite"].lower() == "strict"
        assert cookie["path"] == "/ui"
        assert not cookie["secure"]  # plain http here; over https it is Secure
        max_age = int(cookie["max-age"])
        assert ttl.total_seconds() - 60 <= max_age <= ttl.total_seconds(), header
        who = page(ui.get("/ui")).one("span", class_="who")
        assert who.text == "alice producer"


REFUSED_TOKENS = {
    "bad-signature": (issue_token("x" * 40, "alice", Role.ADMIN, timedelta(hours=1)), "Signature"),
    "expired": (issue_token(SECRET, "alice", Role.ADMIN, timedelta(seconds=-30)), "token expired"),
    "too-long-lived": (
        issue_token(SECRET, "alice", Role.ADMIN, timedelta(days=30)),
        "exceeds the accepted maximum",
    ),
    "garbage": (
        "eyJzZWNyZXQtYml0cw.c2VjcmV0LXBheWxvYWQtYml0cw.c2lnbmF0dXJlLWJpdHM",
        "invalid token",
    ),
    "empty": ("   ", "paste a token"),
}


def test_a_refused_token_shows_why_and_never_the_token(ui: TestClient) -> None:
    for name, (jwt, reason) in REFUSED_TOKENS.items():
        response = ui.post("/ui/login", data={"token": jwt, "next": "/ui"}, follow_redirects=False)
        assert response.status_code == 401, name
        assert SESSION_COOKIE not in set_cookies(response), name
        shown = page(response)
        error = shown.by_id("login-error")
        assert error is not None and reason in error.text, (name, response.text)
        for segment in jwt.strip().split("."):
            assert not segment or segment not in response.text, (name, segment)
        assert shown.one("textarea", name="token").text == ""
        assert ui.get("/ui", follow_redirects=False).status_code == 303, name  # signed out


def test_signing_in_goes_back_only_into_the_dashboard(
    ui: TestClient, store: AssessmentStore
) -> None:
    jwt = token("alice", Role.ADMIN)
    for next_path in (
        "//evil.example",
        "//evil.example/ui",
        "https://evil.example",
        "https://evil.example/ui",
        "http:evil.example",
        "/\\evil.example",
        "/ui\\@evil.example",
        "javascript:alert(1)",
        "/v1/assessments",
        "",
    ):
        login_form = page(ui.get("/ui/login", params={"next": next_path}))
        assert login_form.one("input", name="next").get("value") == "/ui", next_path
        response = ui.post(
            "/ui/login", data={"token": jwt, "next": next_path}, follow_redirects=False
        )
        assert response.headers["location"] == "/ui", next_path
    # A page of the dashboard is where signing in goes back to.
    assessment_id = create(store, "alice")
    wanted = f"/ui/assessments/{assessment_id}"
    ui.cookies.clear()
    response = ui.post(
        "/ui/login",
        data={"token": token("alice", Role.PRODUCER), "next": wanted},
        follow_redirects=False,
    )
    assert location(response) == (wanted, {})
    record = page(ui.get(wanted)).one("section", id="record")
    assert record.get("data-assessment-id") == assessment_id


def test_signing_out_needs_the_form_token_and_clears_the_cookie(signed_in: SignIn) -> None:
    client = signed_in("alice", Role.PRODUCER)
    csrf = page(client.get("/ui")).csrf()
    for fields in ({}, {"csrf": ""}, {"csrf": "0" * 64}):
        refused = client.post("/ui/logout", data=fields, follow_redirects=False)
        assert location(refused) == ("/ui", {})
        assert SESSION_COOKIE not in set_cookies(refused), fields
        assert client.get("/ui", follow_redirects=False).status_code == 200
    response = client.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False)
    assert location(response) == ("/ui/login", {})
    cleared = set_cookies(response)[SESSION_COOKIE][SESSION_COOKIE]
    assert cleared.value == "" and int(cleared["max-age"]) == 0 and cleared["path"] == "/ui"
    after = client.get("/ui", follow_redirects=False)
    assert location(after)[0] == "/ui/login"


# -- who sees what ---------------------------------------------------------------------------


@pytest.fixture
def owned(store: AssessmentStore) -> dict[str, list[str]]:
    """Assessments of two producers and of an admin (created through the store)."""
    return {
        "alice": [create(store, "alice", server_name=f"alice-{n}:22") for n in range(3)],
        "bob": [create(store, "bob", server_name=f"bob-{n}:22") for n in range(2)],
        "root": [create(store, "root", server_name="root-0:22")],
    }


def test_the_list_shows_what_v1_would(
    signed_in: SignIn, store: AssessmentStore, owned: dict[str, list[str]]
) -> None:
    everyone = {i for ids in owned.values() for i in ids}
    for subject, role, owner in (
        ("alice", Role.PRODUCER, "alice"),
        ("bob", Role.PRODUCER, "bob"),
        ("alice", Role.VIEWER, "alice"),
        ("root", Role.ADMIN, None),
    ):
        shown = page(signed_in(subject, role).get("/ui"))
        expected = [a.assessment_id for a in store.list_assessments(owner=owner).items]
        assert shown.row_ids() == expected, (subject, role)
        assert set(shown.row_ids()) == (set(owned[subject]) if owner else everyone)
        for other in ("alice", "bob", "root"):
            if owner is not None and other != owner:
                assert f"{other}-0:22" not in shown.html, (subject, role, other)


def test_another_producers_assessment_is_not_found(
    signed_in: SignIn, owned: dict[str, list[str]]
) -> None:
    bobs = owned["bob"][0]
    for client in (signed_in("alice", Role.PRODUCER), signed_in("alice", Role.VIEWER)):
        response = client.get(f"/ui/assessments/{bobs}")
        assert response.status_code == 404
        shown = page(response)
        not_found = shown.by_id("not-found")
        assert not_found is not None and bobs in not_found.text
        assert shown.by_id("record") is None and "bob-0:22" not in response.text
    assert signed_in("alice", Role.PRODUCER).get("/ui/assessments/nope").status_code == 404
    admin = signed_in("root", Role.ADMIN).get(f"/ui/assessments/{bobs}")
    assert admin.status_code == 200 and "bob-0:22" in admin.text


def test_buttons_are_shown_to_those_who_may_act(signed_in: SignIn, store: AssessmentStore) -> None:
    pending = create(store, "alice")
    running = create(store, "alice")
    store.start_processing(running, "w1")
    failed = dead_letter(store, "alice").assessment_id
    completed = finished(store, "alice").assessment_id
    producer = signed_in("alice", Role.PRODUCER)
    viewer = signed_in("alice", Role.VIEWER)
    admin = signed_in("root", Role.ADMIN)
    expected: dict[str, tuple[list[str], list[str], list[str]]] = {
        pending: (["cancel"], [], ["cancel"]),
        running: (["cancel"], [], ["cancel"]),
        failed: (["retry"], [], ["retry"]),
        completed: ([], [], []),
    }
    for assessment_id, (for_producer, for_viewer, for_admin) in expected.items():
        for client, wanted in ((producer, for_producer), (viewer, for_viewer), (admin, for_admin)):
            shown = page(client.get(f"/ui/assessments/{assessment_id}"))
            assert shown.action_buttons() == wanted, assessment_id
            forms = shown.all("form", method="post")
            actions = [f.get("action") for f in forms if "/assessments/" in f.get("action")]
            assert actions == [f"/ui/assessments/{assessment_id}/{a}" for a in wanted]


def test_a_viewer_posting_a_valid_form_is_refused_and_nothing_changes(
    signed_in: SignIn, store: AssessmentStore
) -> None:
    pending = create(store, "alice")
    failed = dead_letter(store, "alice")
    viewer = signed_in("alice", Role.VIEWER)
    for assessment_id, action, version in (
        (pending, "cancel", 1),
        (failed.assessment_id, "retry", failed.version),
    ):
        before = store.get_fresh_state(assessment_id)
        _, shown = act(viewer, assessment_id, action, expectedVersion=str(version))
        kind, code, message = flash_of(shown)
        assert (kind, code) == ("error", "FORBIDDEN"), message
        assert "viewer" in message
        after = store.get_fresh_state(assessment_id)
        assert (after.state, after.version) == (before.state, before.version)
        assert len(store.get_audit_trail(assessment_id)) == before.version


def test_a_producer_cannot_act_on_another_producers_assessment(
    signed_in: SignIn, store: AssessmentStore
) -> None:
    bobs = create(store, "bob")
    alice = signed_in("alice", Role.PRODUCER)
    _, shown = act(alice, bobs, "cancel", expectedVersion="1", reason="mine now")
    assert flash_of(shown)[:2] == ("error", "ASSESSMENT_NOT_FOUND")
    after = store.get_fresh_state(bobs)
    assert (after.state, after.version) == (AssessmentState.PENDING, 1)
    bob = signed_in("bob", Role.PRODUCER)
    _, own = act(bob, bobs, "cancel", expectedVersion="1", reason="done with it")
    assert flash_of(own)[:2] == ("ok", "")
    trail = store.get_audit_trail(bobs)
    assert (trail[-1].event, trail[-1].changed_by) == ("cancel", "bob")


# -- actions ----------------------------------------------------------------------------------


def test_an_admin_cancels_the_version_it_saw_and_is_audited(
    signed_in: SignIn, store: AssessmentStore
) -> None:
    assessment_id = create(store, "alice")
    admin = signed_in("root", Role.ADMIN)
    detail = page(admin.get(f"/ui/assessments/{assessment_id}"))
    form_version = detail.one("input", name="expectedVersion").get("value")
    posted, shown = act(
        admin,
        assessment_id,
        "cancel",
        csrf=detail.csrf(),
        expectedVersion=form_version,
        reason="no longer needed",
    )
    assert flash_of(shown) == ("ok", "", "cancelled (version 2)")
    current = store.get_fresh_state(assessment_id)
    assert (current.state, current.version) == (AssessmentState.CANCELLED, 2)
    last = store.get_audit_trail(assessment_id)[-1]
    assert (last.event, last.changed_by, last.change_reason) == (
        "cancel",
        "root",
        "cancelled: no longer needed",
    )
    record = shown.one("section", id="record")
    assert (record.get("data-state"), record.get("data-version")) == ("cancelled", "2")
    assert shown.action_buttons() == []
    audit_rows = shown.all("tr", data_event="cancel")
    assert len(audit_rows) == 1 and "root" in audit_rows[0].text
    assert "no longer needed" in audit_rows[0].text
    flash_header = raw_set_cookie(posted, FLASH_COOKIE)
    assert "HttpOnly" in flash_header and "Path=/ui" in flash_header
    assert "samesite=strict" in flash_header.lower()


def test_a_stale_version_is_a_conflict_and_changes_nothing(
    signed_in: SignIn, store: AssessmentStore
) -> None:
    assessment_id = create(store, "alice")
    admin = signed_in("root", Role.ADMIN)
    seen = page(admin.get(f"/ui/assessments/{assessment_id}"))
    store.start_processing(assessment_id, "w1")  # meanwhile, behind the page's back
    _, shown = act(
        admin,
        assessment_id,
        "cancel",
        csrf=seen.csrf(),
        expectedVersion=seen.one("input", name="expectedVersion").get("value"),
    )
    kind, code, message = flash_of(shown)
    assert (kind, code) == ("error", "VERSION_CONFLICT"), message
    current = store.get_fresh_state(assessment_id)
    assert (current.state, current.version) == (AssessmentState.PROCESSING, 2)
    assert [e.event for e in store.get_audit_trail(assessment_id)] == ["create", "start"]


def test_cancelling_a_completed_assessment_is_an_invalid_transition(
    signed_in: SignIn, store: AssessmentStore
) -> None:
    done = finished(store, "alice")
    admin = signed_in("root", Role.ADMIN)
    _, shown = act(admin, done.assessment_id, "cancel", expectedVersion=str(done.version))
    assert flash_of(shown)[:2] == ("error", "INVALID_STATE_TRANSITION")
    current = store.get_fresh_state(done.assessment_id)
    assert (current.state, current.version) == (AssessmentState.COMPLETED, done.version)


def test_retrying_a_dead_letter_puts_it_back_and_the_message_shows_once(
    signed_in: SignIn, store: AssessmentStore
) -> None:
    dead = dead_letter(store, "alice")
    admin = signed_in("root", Role.ADMIN)
    detail = page(admin.get(f"/ui/assessments/{dead.assessment_id}"))
    assert detail.action_buttons() == ["retry"]
    assert "dead letter" in detail.one("section", id="record").text
    posted = admin.post(
        f"/ui/assessments/{dead.assessment_id}/retry",
        data={"csrf": detail.csrf(), "expectedVersion": str(dead.version)},
        follow_redirects=False,
    )
    assert location(posted)[0] == f"/ui/assessments/{dead.assessment_id}"
    current = store.get_fresh_state(dead.assessment_id)
    assert (current.state, current.version) == (AssessmentState.PENDING, dead.version + 1)
    last = store.get_audit_trail(dead.assessment_id)[-1]
    assert (last.event, last.changed_by) == ("retry", "root")
    first = admin.get(f"/ui/assessments/{dead.assessment_id}")
    kind, code, message = flash_of(Page(first.text))
    assert (kind, code) == ("ok", "") and "back to pending" in message
    assert f"version {dead.version + 1}" in message
    cleared = set_cookies(first)[FLASH_COOKIE][FLASH_COOKIE]
    assert cleared.value == "" and int(cleared["max-age"]) == 0
    second = page(admin.get(f"/ui/assessments/{dead.assessment_id}"))
    assert second.by_id("flash") is None
    assert page(admin.get("/ui")).by_id("flash") is None
    assert second.action_buttons() == ["cancel"]


def _flash_value(secret: str, payload: dict[str, str]) -> str:
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
    signature = hmac.new(
        secret.encode(), b"flash\x00" + encoded.encode(), hashlib.sha256
    ).hexdigest()
    return f"{encoded}.{signature}"


def test_a_forged_message_cookie_shows_nothing(signed_in: SignIn, store: AssessmentStore) -> None:
    assessment_id = create(store, "alice")
    admin = signed_in("root", Role.ADMIN)
    message = {"kind": "error", "message": "FORGED", "code": "FORBIDDEN"}
    signed = _flash_value(SECRET, message)
    forgeries = {
        "other-secret": _flash_value("some-other-secret-0123456789", message),
        "bad-signature": signed.rsplit(".", 1)[0] + ".00",
        "unsigned": signed.rsplit(".", 1)[0],
        "plain-payload": base64.urlsafe_b64encode(json.dumps(message).encode()).decode(),
        "junk": "FORGED",
    }
    for name, forged in forgeries.items():
        admin.cookies.set(FLASH_COOKIE, forged, domain="testserver.local", path="/ui")
        for path in ("/ui", f"/ui/assessments/{assessment_id}"):
            response = admin.get(path)
            assert response.status_code == 200, (name, path)
            assert page(response).by_id("flash") is None and "FORGED" not in response.text, name
    # The control: the same cookie signed with the dashboard's key is shown (so the
    # forgeries above did reach the page, and were refused).
    genuine = _flash_value(SECRET, {**message, "message": "GENUINE"})
    admin.cookies.set(FLASH_COOKIE, genuine, domain="testserver.local", path="/ui")
    assert flash_of(page(admin.get("/ui"))) == ("error", "FORBIDDEN", "FORBIDDEN: GENUINE")


def test_an_unknown_action_or_a_bad_version_is_refused(
    signed_in: SignIn, store: AssessmentStore
) -> None:
    assessment_id = create(store, "alice")
    admin = signed_in("root", Role.ADMIN)
    _, shown = act(admin, assessment_id, "delete", expectedVersion="1")
    kind, _, unknown = flash_of(shown)
    assert kind == "error" and "delete" in unknown, unknown
    _, bad_version = act(admin, assessment_id, "cancel", expectedVersion="one")
    kind, code, message = flash_of(bad_version)
    assert (kind, code) == ("error", "VALIDATION_ERROR") and "expectedVersion" in message
    current = store.get_fresh_state(assessment_id)
    assert (current.state, current.version) == (AssessmentState.PENDING, 1)


def test_an_unknown_action_is_not_reported_as_a_missing_assessment(
    signed_in: SignIn, store: AssessmentStore
) -> None:
    assessment_id = create(store, "alice")
    _, shown = act(signed_in("root", Role.ADMIN), assessment_id, "delete", expectedVersion="1")
    kind, code, message = flash_of(shown)
    assert kind == "error" and code != "ASSESSMENT_NOT_FOUND", message
    assert "not found" not in message, message


def test_acting_without_a_session_goes_to_sign_in_and_changes_nothing(
    ui: TestClient, store: AssessmentStore
) -> None:
    assessment_id = create(store, "alice")
    response = ui.post(
        f"/ui/assessments/{assessment_id}/cancel",
        data={"csrf": "x", "expectedVersion": "1"},
        follow_redirects=False,
    )
    assert location(response) == ("/ui/login", {"next": [f"/ui/assessments/{assessment_id}"]})
    assert store.get_fresh_state(assessment_id).state is AssessmentState.PENDING


# -- the list's filters ---------------------------------------------------------------------


@pytest.fixture
def varied(store: AssessmentStore) -> dict[str, str]:
    """One assessment of each kind the filters tell apart, by name. Searched text uses
    letters no hexadecimal id holds ("pg", "refused"): a random id never matches."""
    ids = {
        "pending": create(store, "alice", server_name="web-1:443"),
        "security": create(store, "alice", assessment_type="security", server_name="PG-2:5432"),
        "compliance": create(store, "bob", source="compliance", server_name="pg-2:5432"),
        "processing": create(store, "bob", server_name="cache:6379"),
        "failed": create(store, "alice", server_name="web-1:443"),
        "cancelled": create(store, "bob", server_name="web-1:443"),
    }
    store.start_processing(ids["processing"], "w1")
    store.start_processing(ids["failed"], "w2")
    store.fail_assessment(ids["failed"], "Connection REFUSED by upstream", permanent=True)
    store.cancel_assessment(ids["cancelled"], "not needed")
    return ids


FILTER_CASES: list[tuple[list[tuple[str, str]], dict[str, object], set[str]]] = [
    ([("state", "pending")], {"states": ["pending"]}, {"pending", "security", "compliance"}),
    (
        [("state", "failed"), ("state", "cancelled")],
        {"states": ["failed", "cancelled"]},
        {"failed", "cancelled"},
    ),
    ([("type", "security")], {"assessmentType": "security"}, {"security"}),
    ([("server", "pg-2:5432")], {"serverName": "pg-2:5432"}, {"compliance"}),
    ([("source", "compliance")], {"source": "compliance"}, {"compliance"}),
    ([("createdBy", "bob")], {"createdBy": "bob"}, {"compliance", "processing", "cancelled"}),
    ([("q", "pg-2")], {"q": "pg-2"}, {"security", "compliance"}),
    ([("q", "refused")], {"q": "refused"}, {"failed"}),
    (
        [("state", "pending"), ("createdBy", "alice"), ("q", "PG")],
        {"states": ["pending"], "createdBy": "alice", "q": "PG"},
        {"security"},
    ),
]


def test_each_filter_in_the_url_lists_what_the_store_lists(
    signed_in: SignIn, store: AssessmentStore, varied: dict[str, str]
) -> None:
    admin = signed_in("root", Role.ADMIN)
    for query, filters, expected in FILTER_CASES:
        shown = page(admin.get("/ui?" + urlencode(query)))
        assert shown.by_id("filter-error") is None, query
        listed = store.list_assessments(AssessmentFilters.model_validate(filters))
        assert shown.row_ids() == [a.assessment_id for a in listed.items], query
        assert set(shown.row_ids()) == {varied[name] for name in expected}, query
        # The form shows the filters applied.
        checked = {e.get("value") for e in shown.all("input", name="state", checked=None)}
        assert checked == {v for k, v in query if k == "state"}, query
        for name, value in query:
            if name == "source":
                assert [o.get("value") for o in shown.all("option", selected=None)] == [value]
            elif name != "state":
                assert shown.one("input", name=name).get("value") == value, query
    # A producer's filters apply within its own assessments.
    alice = signed_in("alice", Role.PRODUCER)
    shown = page(alice.get("/ui?q=pg-2"))
    assert shown.row_ids() == [varied["security"]]
    assert shown.all("input", name="createdBy") == []  # no creator field for producers
    refused = alice.get("/ui?createdBy=bob")
    assert refused.status_code == 200
    error = page(refused).by_id("filter-error")
    assert error is not None and "createdBy" in error.text
    assert page(refused).row_ids() == []


@pytest.fixture
def utc_offset_zone() -> Iterator[None]:
    """The process in New York time: a naive value read as local time would be 5 hours
    off, so the tests below tell "naive is UTC" from "naive is local"."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.usefixtures("utc_offset_zone")
def test_created_from_and_to_are_utc_from_at_and_before_to(
    signed_in: SignIn, store: AssessmentStore, raw_engine: Engine
) -> None:
    base = datetime(2031, 3, 4, 10, 0, 0, tzinfo=UTC)
    ids = [create(store, "alice") for _ in range(3)]
    with raw_engine.begin() as conn:
        for offset, assessment_id in enumerate(ids):
            conn.execute(
                text("UPDATE assessment_states SET created_at = :at WHERE assessment_id = :id"),
                {"at": base + timedelta(seconds=offset), "id": assessment_id},
            )
    at0, at1, at2 = ids
    admin = signed_in("root", Role.ADMIN)
    cases = [
        ({"createdAfter": "2031-03-04T10:00:01"}, [at2, at1]),
        ({"createdBefore": "2031-03-04T10:00:02"}, [at1, at0]),
        ({"createdAfter": "2031-03-04T10:00:01", "createdBefore": "2031-03-04T10:00:02"}, [at1]),
        (
            {"createdAfter": "2031-03-04T10:00", "createdBefore": "2031-03-04T10:01"},
            [at2, at1, at0],
        ),
        ({"createdAfter": "2031-03-04T11:00:01+01:00"}, [at2, at1]),
        ({"createdAfter": "2031-03-04T10:00:03"}, []),
        ({"createdBefore": "2031-03-04T10:00:00"}, []),
    ]
    for query, expected in cases:
        shown = page(admin.get("/ui?" + urlencode(query)))
        assert shown.by_id("filter-error") is None, query
        assert shown.row_ids() == expected, query
        for name, value in query.items():
            assert shown.one("input", name=name).get("value") == value


def refused_filter(client: TestClient, query: dict[str, str] | dict[str, list[str]]) -> str:
    """The #filter-error of the list at ``query``, which must be a page, not a 500."""
    response = client.get("/ui?" + urlencode(query, doseq=True))
    assert response.status_code == 200, (query, response.status_code)
    shown = page(response)
    error = shown.by_id("filter-error")
    assert error is not None, (query, response.text[-1500:])
    assert shown.row_ids() == [], query
    assert shown.by_id("filters") is not None  # the form stays, to correct the value
    return error.text


def test_a_bad_filter_is_named_on_the_page_never_a_server_error(
    signed_in: SignIn, varied: dict[str, str]
) -> None:
    admin = signed_in("root", Role.ADMIN)
    for query, parameter in (
        ({"createdAfter": "garbage"}, "createdAfter"),
        ({"createdBefore": "2031-13-01T00:00"}, "createdBefore"),
        ({"source": "elsewhere"}, "source"),
        ({"type": "t" * 65}, "type"),
        ({"q": "a\x07b"}, "q"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ):
        message = refused_filter(admin, query)
        assert message.split(":")[0] == parameter, (query, message)


def test_a_bad_state_is_named_on_the_page(signed_in: SignIn, varied: dict[str, str]) -> None:
    admin = signed_in("root", Role.ADMIN)
    queries: list[dict[str, list[str]]] = [{"state": ["nope"]}, {"state": ["pending", "nope"]}]
    for query in queries:
        message = refused_filter(admin, query)
        assert message.split(":")[0] == "state", (query, message)


def test_keyset_pages_cover_every_row_once_in_order(
    signed_in: SignIn, store: AssessmentStore
) -> None:
    # Three transactions of 45: within each, every row has the same created_at, so the
    # pages' boundaries fall among ties broken by id.
    for batch in range(3):
        store.batch_create_assessments(
            [request(assessment_type="security" if n % 2 == 0 else "health") for n in range(45)],
            created_by=f"owner-{batch}",
        )
    admin = signed_in("root", Role.ADMIN)
    for query, filters in (("", {}), ("?type=security", {"assessmentType": "security"})):
        expected = [
            a.assessment_id
            for a in store.list_assessments(
                AssessmentFilters.model_validate({**filters, "limit": 1000})
            ).items
        ]
        assert len(expected) > 50
        seen: list[str] = []
        url: str | None = "/ui" + query
        pages = 0
        while url is not None:
            shown = page(admin.get(url))
            assert shown.by_id("filter-error") is None
            rows = shown.row_ids()
            assert 0 < len(rows) <= 50
            assert (shown.by_id("first-page") is None) == (pages == 0)
            seen += rows
            pages += 1
            following = shown.by_id("next-page")
            url = following.get("href") if following is not None else None
            if url is not None:
                assert len(rows) == 50
                assert url.startswith("/ui?") and query.lstrip("?") in url
        assert seen == expected, query
        assert pages == -(-len(expected) // 50)
