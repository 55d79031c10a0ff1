"""The dashboard's defences: CSRF (form token and Origin), escaping, the response
headers that hold its Content Security Policy, and assets that all come from here."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx2
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from assessment_store.http.auth import Role
from assessment_store.http.ui.render import STATIC, TEMPLATES
from assessment_store.http.ui.session import SESSION_COOKIE
from assessment_store.service import AssessmentStore
from assessment_store.states import AssessmentState
from tests.factories import request
from tests.http.ui_support import BASE_URL, Page, SignIn, page, token
from tests.http.ui_support import signed_in as signed_in
from tests.http.ui_support import ui as ui
from tests.http.ui_support import ui_app as ui_app

UI_PACKAGE = TEMPLATES.parent


def create(store: AssessmentStore, owner: str, **fields: object) -> str:
    return store.create_assessment(request(**fields), created_by=owner)


def post_cancel(
    client: TestClient, assessment_id: str, fields: dict[str, str], **headers: str
) -> Page:
    """Post a cancel form with ``fields`` and ``headers``; the page it lands on."""
    response = client.post(
        f"/ui/assessments/{assessment_id}/cancel",
        data=fields,
        headers=headers,
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return page(client.get(response.headers["location"]))


def flash_code(shown: Page) -> str:
    flash = shown.by_id("flash")
    assert flash is not None, shown.html[-1500:]
    return flash.get("data-code")


# -- CSRF ----------------------------------------------------------------------------------


def test_an_action_without_this_sessions_form_token_is_refused(
    signed_in: SignIn, store: AssessmentStore
) -> None:
    assessment_id = create(store, "alice")
    admin = signed_in("root", Role.ADMIN)
    other_admin = signed_in("root2", Role.ADMIN)
    other_sessions = page(other_admin.get("/ui")).csrf()
    assert other_sessions != page(admin.get("/ui")).csrf()
    for fields in (
        {"expectedVersion": "1"},
        {"expectedVersion": "1", "csrf": ""},
        {"expectedVersion": "1", "csrf": "0" * 64},
        {"expectedVersion": "1", "csrf": other_sessions},
    ):
        shown = post_cancel(admin, assessment_id, fields)
        assert flash_code(shown) == "FORBIDDEN", fields
        current = store.get_fresh_state(assessment_id)
        assert (current.state, current.version) == (AssessmentState.PENDING, 1), fields
    assert len(store.get_audit_trail(assessment_id)) == 1


def test_a_cross_origin_post_is_refused_even_with_the_right_token(
    signed_in: SignIn, store: AssessmentStore
) -> None:
    assessment_id = create(store, "alice")
    admin = signed_in("root", Role.ADMIN)
    fields = {"expectedVersion": "1", "csrf": page(admin.get("/ui")).csrf()}
    for origin in ("https://evil.example", "null", "https://testserver", "http://testserver:81"):
        shown = post_cancel(admin, assessment_id, fields, origin=origin)
        assert flash_code(shown) == "FORBIDDEN", origin
        assert store.get_fresh_state(assessment_id).state is AssessmentState.PENDING, origin
    # The same form from this origin is accepted.
    same = post_cancel(admin, assessment_id, fields, origin=BASE_URL)
    assert same.by_id("flash") is not None and "flash-ok" in same.one(id="flash").get("class")
    assert store.get_fresh_state(assessment_id).state is AssessmentState.CANCELLED


def test_signing_in_from_another_site_is_refused(ui: TestClient) -> None:
    jwt = token("mallory", Role.ADMIN)
    response = ui.post(
        "/ui/login",
        data={"token": jwt, "next": "/ui"},
        headers={"origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert jwt not in response.text
    assert ui.get("/ui", follow_redirects=False).status_code == 303


def test_signing_out_from_another_site_is_refused(signed_in: SignIn) -> None:
    client = signed_in("alice", Role.PRODUCER)
    csrf = page(client.get("/ui")).csrf()
    response = client.post(
        "/ui/logout",
        data={"csrf": csrf},
        headers={"origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/ui"
    assert SESSION_COOKIE not in response.headers.get("set-cookie", "")
    assert client.get("/ui", follow_redirects=False).status_code == 200


# -- escaping ---------------------------------------------------------------------------------


def test_stored_text_and_the_url_are_shown_as_text_never_as_markup(
    signed_in: SignIn, store: AssessmentStore, raw_engine: Engine
) -> None:
    server = "<script>alert('server')</script>"
    error = '<img src=x onerror="alert(1)">'
    assessment_id = create(store, "alice")
    store.start_processing(assessment_id, "w1")
    store.fail_assessment(assessment_id, error, permanent=True)
    # Creation refuses such a server name now; a row stored before that rule is shown.
    with raw_engine.begin() as conn:
        conn.execute(
            text("UPDATE assessment_states SET server_name = :s WHERE assessment_id = :id"),
            {"s": server, "id": assessment_id},
        )
    admin = signed_in("root", Role.ADMIN)
    probe = '"><script>alert(2)</script>'
    responses = [
        admin.get("/ui"),
        admin.get("/ui", params={"q": probe}),
        admin.get("/ui", params={"server": server}),
        admin.get(f"/ui/assessments/{assessment_id}"),
        admin.get("/ui/assessments/" + "%3Cscript%3Ex"),
        admin.get("/ui/login", params={"next": "/ui" + probe}),
    ]
    for response in responses:
        for raw in (server, error, probe, "<script>x"):
            assert raw not in response.text, (response.url, raw)
        assert_no_inline_code(page(response))
    listed = page(responses[0])
    assert listed.one("td", class_="server").text == server  # shown, as text
    assert page(responses[1]).one("input", name="q").get("value") == probe
    assert page(responses[5]).one("input", name="next").get("value") == "/ui" + probe
    detail = page(responses[3])
    assert detail.one("pre", class_="error").text == error
    # A value put into the flash message (expectedVersion) comes back escaped too.
    fields = {"csrf": detail.csrf(), "expectedVersion": "<b>bold</b>"}
    shown = post_cancel(admin, assessment_id, fields)
    assert "<b>bold</b>" not in shown.html and "&lt;b&gt;bold&lt;/b&gt;" in shown.html


def assert_no_inline_code(shown: Page) -> None:
    """Nothing the page's CSP (script-src/style-src 'self') would block: no inline
    script or style, no event-handler attribute, no javascript: URL."""
    for element in shown.elements:
        if element.tag == "script":
            assert element.get("src").startswith("/ui/static/"), element.attrs
            assert element.text == "", element.attrs
        assert element.tag != "style", element.attrs
        assert "style" not in element.attrs, element.attrs
        handlers = [name for name in element.attrs if name.startswith("on")]
        assert not handlers, element.attrs
        for name in ("href", "src", "action"):
            value = element.get(name)
            if value:
                assert not value.lower().startswith("javascript:"), element.attrs
                assert_local(value, element.attrs)


def assert_local(url: str, where: object) -> None:
    """A URL of this site (a path, a fragment) or inline data, never another host's."""
    assert url.startswith(("/", "#", "data:", "?")), (url, where)
    assert not url.startswith("//"), (url, where)


# -- headers -----------------------------------------------------------------------------------


def assert_security_headers(response: httpx2.Response) -> None:
    headers = response.headers
    policy = headers.get("content-security-policy", "")
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    where = (response.url, response.status_code, policy)
    assert directives.get("default-src") == ["'none'"], where
    assert directives.get("script-src") == ["'self'"], where
    assert directives.get("style-src") == ["'self'"], where
    assert directives.get("frame-ancestors") == ["'none'"], where
    assert directives.get("base-uri") == ["'none'"], where
    assert directives.get("form-action") == ["'self'"], where
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, where
    assert headers.get("x-content-type-options") == "nosniff", where
    assert headers.get("x-frame-options") == "DENY", where
    assert headers.get("cache-control") == "no-store", where


def test_every_page_carries_the_security_headers(
    ui: TestClient, signed_in: SignIn, store: AssessmentStore
) -> None:
    assessment_id = create(store, "alice")
    store.start_processing(assessment_id, "w1")
    store.complete_assessment(assessment_id, {"ok": True})  # a bar in the chart
    signed_out = [
        ui.get("/ui", follow_redirects=False),
        ui.get("/ui/login"),
        ui.post("/ui/login", data={"token": "nope"}),
        ui.get("/ui/events"),
        ui.post("/ui/login", data={"token": token("a", Role.ADMIN)}, follow_redirects=False),
    ]
    admin = signed_in("root", Role.ADMIN)
    csrf = page(admin.get("/ui")).csrf()
    signed = [
        admin.get("/ui"),
        admin.get("/ui?state=nope"),
        admin.get(f"/ui/assessments/{assessment_id}"),
        admin.get("/ui/assessments/missing"),
        admin.post(
            f"/ui/assessments/{assessment_id}/cancel",
            data={"csrf": csrf},
            follow_redirects=False,
        ),
        admin.post("/ui/logout", data={}, follow_redirects=False),
    ]
    statuses = [r.status_code for r in signed_out + signed]
    assert statuses == [303, 200, 401, 204, 303, 200, 200, 200, 404, 303, 303]
    for response in signed_out + signed:
        assert_security_headers(response)
    for response in signed[:4]:
        assert_no_inline_code(page(response))
    assert "<svg" in signed[0].text and 'class="bar-completed"' in signed[0].text


def test_the_script_and_the_style_sheet_are_served_from_the_package(ui: TestClient) -> None:
    for name, kind in (("dashboard.js", "javascript"), ("dashboard.css", "text/css")):
        response = ui.get(f"/ui/static/{name}")
        assert response.status_code == 200, name
        assert kind in response.headers["content-type"], response.headers
        assert response.content == (STATIC / name).read_bytes()
    assert ui.get("/ui/static/nothing.js").status_code == 404
    assert ui.get("/ui/static/../templates/base.html").status_code == 404
    assert ui.get("/ui/static/%2e%2e/templates/base.html").status_code == 404


def test_the_pages_refer_to_their_assets_by_path(signed_in: SignIn) -> None:
    shown = page(signed_in("root", Role.ADMIN).get("/ui"))
    scripts = [e.get("src") for e in shown.all("script")]
    sheets = [e.get("href") for e in shown.all("link", rel="stylesheet")]
    assert (scripts, sheets) == (["/ui/static/dashboard.js"], ["/ui/static/dashboard.css"])


# Any URL with a host: a scheme's ("https://x"), or protocol-relative ("//x") as an
# attribute's or CSS url()'s value. JavaScript comments ("// text") have a space.
EXTERNAL = re.compile(
    r"""[a-z][a-z0-9+.-]*://|["'(=]\s*//[^\s/"')]|@import|\burl\(\s*["']?[a-z]+:""",
    re.IGNORECASE,
)


def test_no_file_of_the_dashboard_refers_to_another_host() -> None:
    files = sorted(p for p in UI_PACKAGE.rglob("*") if p.is_file() and p.suffix != ".pyc")
    names = {p.relative_to(UI_PACKAGE).as_posix() for p in files}
    assert {"static/dashboard.js", "static/dashboard.css", "templates/base.html"} <= names
    found = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if EXTERNAL.search(line):
                found.append(f"{path.relative_to(UI_PACKAGE)}:{number}: {line.strip()}")
    assert found == []


def test_the_external_reference_check_would_see_one(tmp_path: Path) -> None:
    # The check above must be able to fail: each of these is a reference to elsewhere.
    for line in (
        '<script src="https://cdn.example/x.js"></script>',
        '<link rel="stylesheet" href="//cdn.example/x.css">',
        "body { background: url(https://img.example/a.png); }",
        "@import 'x.css';",
        "fetch('http://api.example/');",
        "const s = new EventSource('//elsewhere.example/ui/events');",
    ):
        assert EXTERNAL.search(line), line
    for line in ("// a comment in JavaScript", '<a href="/ui">', "src: /ui/static/x.js"):
        assert not EXTERNAL.search(line), line


def test_the_stream_is_no_content_without_a_valid_session(
    ui: TestClient, signed_in: SignIn
) -> None:
    # 204 tells EventSource to stop reconnecting (a stream would never end here).
    expired = token("alice", Role.ADMIN, timedelta(seconds=-30))
    for value in (None, "garbage", expired):
        ui.cookies.clear()
        if value is not None:
            ui.cookies.set(SESSION_COOKIE, value, domain="testserver.local", path="/ui")
        response = ui.get("/ui/events?view=list")
        assert (response.status_code, response.content) == (204, b""), value
    # A signed-in list with a filter it cannot apply is told to stop as well.
    admin = signed_in("root", Role.ADMIN)
    for query in ("state=nope", "createdAfter=garbage", "createdBy=" + "x" * 300):
        assert admin.get(f"/ui/events?view=list&{query}").status_code == 204, query


def test_a_broken_session_cookie_is_treated_as_signed_out(ui: TestClient) -> None:
    for value in ("garbage", token("alice", Role.ADMIN)[:-4] + "AAAA", "a.b.c"):
        ui.cookies.set(SESSION_COOKIE, value, domain="testserver.local", path="/ui")
        response = ui.get("/ui", follow_redirects=False)
        assert response.status_code == 303, value
        assert response.headers["location"].startswith("/ui/login?")
        assert ui.get("/ui/events").status_code == 204
