"""The dashboard's pages and actions: thin, like /v1 (parse, one service call, render).

Every page reads as its signed-in principal's ``owner`` exactly as /v1 does, so a
producer or viewer sees only its own assessments. Actions are plain HTML forms posted
back here (Post/Redirect/Get): each calls the same service method as its /v1
endpoint, with the version the operator was looking at as ``expectedVersion``, so a
change made meanwhile is refused with VERSION_CONFLICT rather than overridden.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from assessment_store.errors import (
    AssessmentNotFoundError,
    AssessmentStoreError,
    InvalidInputError,
    StoreUnavailableError,
    UnauthorizedError,
)
from assessment_store.http.auth import Principal
from assessment_store.http.dependencies import WRITERS
from assessment_store.http.list_filters import filters_from_query
from assessment_store.http.ui import flash, session
from assessment_store.http.ui.render import render
from assessment_store.models import AssessmentFilters
from assessment_store.service import AssessmentStore

router = APIRouter(prefix="/ui", include_in_schema=False)

SOURCES = ("installer", "compliance")
FORM_FIELDS = ("type", "server", "source", "createdBy", "createdAfter", "createdBefore", "q")
PAGE_SIZE = 50
ACTIONS = ("cancel", "retry")


def _store(request: Request) -> AssessmentStore:
    store: AssessmentStore = request.app.state.store
    return store


def page(html: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code, headers=session.SECURITY_HEADERS)


def redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, 303, headers=session.SECURITY_HEADERS)


def to_sign_in(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect("/ui/login?" + urlencode({"next": here}))


def _safe_next(value: str | None) -> str:
    """Only a dashboard path: never another site (an open redirect)."""
    if value and value.startswith("/ui") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui"


async def form_of(request: Request) -> dict[str, str]:
    """An url-encoded form's fields (the body guard has bounded its size)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return {key: values[-1] for key, values in parse_qs(body, keep_blank_values=True).items()}


def _context(request: Request, principal: Principal | None, **extra: Any) -> dict[str, Any]:
    return {
        "principal": principal,
        "csrf": session.csrf_token(request) if principal else "",
        "flash": flash.take(request),
        **extra,
    }


def _finish(request: Request, response: HTMLResponse) -> HTMLResponse:
    flash.clear_if_taken(request, response)
    return response


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> HTMLResponse:
    html = render("login.html", **_context(request, None, next=_safe_next(next), error=None))
    return _finish(request, page(html))


@router.post("/login")
async def login(request: Request) -> Response:
    fields = await form_of(request)
    target = _safe_next(fields.get("next"))
    try:
        session.check_same_origin(request)
        token = fields.get("token", "").strip()
        if not token:
            raise UnauthorizedError("paste a token to sign in")
        session.principal_from_token(request, token)
    except AssessmentStoreError as exc:
        # The message says what is wrong with the token, never the token itself.
        html = render("login.html", **_context(request, None, next=target, error=exc.message))
        return page(html, 401 if isinstance(exc, UnauthorizedError) else 403)
    response = redirect(target)
    session.sign_in(request, response, token)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    fields = await form_of(request)
    try:
        session.check_csrf(request, fields.get(session.CSRF_FIELD))
    except AssessmentStoreError:
        return redirect("/ui")
    response = redirect("/ui/login")
    session.sign_out(response)
    return response


def list_form(request: Request) -> dict[str, Any]:
    """The filter form's values as the URL holds them ('' for unset)."""
    query = request.query_params
    form: dict[str, Any] = {name: query.get(name, "") for name in FORM_FIELDS}
    form["state"] = [s for s in query.getlist("state") if s]
    form["cursor"] = query.get("cursor", "")
    return form


def _moment(value: str) -> datetime | str | None:
    """A form's datetime-local value (no zone: UTC) or an ISO time with its zone."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value  # AssessmentFilters names the field and says what is wrong
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def filters_of(form: dict[str, Any], limit: int = PAGE_SIZE) -> AssessmentFilters:
    return filters_from_query(
        {
            "states": form["state"] or None,
            "assessmentType": form["type"] or None,
            "serverName": form["server"] or None,
            "source": form["source"] or None,
            "createdBy": form["createdBy"] or None,
            "createdAfter": _moment(form["createdAfter"]),
            "createdBefore": _moment(form["createdBefore"]),
            "q": form["q"] or None,
            "cursor": form["cursor"] or None,
            "limit": limit,
        }
    )


def _url(form: dict[str, Any], **changes: str) -> str:
    pairs: list[tuple[str, str]] = [("state", s) for s in form["state"]]
    pairs += [(k, form[k]) for k in FORM_FIELDS if form[k]]
    pairs += [(k, v) for k, v in changes.items() if v]
    return "/ui" + (f"?{urlencode(pairs)}" if pairs else "")


def _parameter(loc: tuple[object, ...]) -> object:
    return loc[1] if len(loc) > 1 and loc[0] == "query" else loc[-1]


def validation_message(exc: RequestValidationError) -> str:
    # loc is ("query", parameter, index...): name the parameter, as /v1 does.
    problems = [f"{_parameter(e['loc'])}: {e['msg']}" for e in exc.errors()]
    return "; ".join(problems)


@router.get("")
def list_page(request: Request) -> Response:
    try:
        principal = session.session_principal(request)
    except UnauthorizedError:
        return to_sign_in(request)
    store = _store(request)
    form = list_form(request)
    error = None
    items: list[Any] = []
    next_cursor = None
    try:
        # The position first: whatever commits after it reaches the page live.
        since = request.app.state.live_feed.position()
        overview = store.get_overview(owner=principal.owner)
    except AssessmentStoreError as exc:
        return _unavailable(request, principal, exc)
    try:
        listed = store.list_assessments(filters_of(form), owner=principal.owner)
        items, next_cursor = listed.items, listed.next_cursor
    except RequestValidationError as exc:
        error = validation_message(exc)
    except StoreUnavailableError as exc:
        return _unavailable(request, principal, exc)
    except AssessmentStoreError as exc:
        error = exc.message
    query = [(k, v) for k, v in request.query_params.multi_items()]
    html = render(
        "list.html",
        **_context(
            request,
            principal,
            form=form,
            sources=SOURCES,
            items=items,
            error=error,
            first_page=not form["cursor"],
            first_url=_url(form),
            next_url=_url(form, cursor=next_cursor) if next_cursor else None,
            overview=overview,
            live_url="/ui/events?" + urlencode([*query, ("view", "list"), ("since", str(since))]),
        ),
    )
    return _finish(request, page(html))


def _unavailable(request: Request, principal: Principal, exc: AssessmentStoreError) -> Response:
    message = f"{exc.message}. Try again in a moment."
    html = render("not_found.html", **_context(request, principal, message=message))
    return _finish(request, page(html, 503))


@router.get("/assessments/{assessment_id}")
def assessment_page(request: Request, assessment_id: str) -> Response:
    try:
        principal = session.session_principal(request)
    except UnauthorizedError:
        return to_sign_in(request)
    store = _store(request)
    try:
        since = request.app.state.live_feed.position()
        found = store.get_fresh_state(assessment_id, owner=principal.owner)
        trail = store.get_audit_trail(assessment_id, owner=principal.owner)
    except StoreUnavailableError as exc:
        return _unavailable(request, principal, exc)
    except AssessmentStoreError as exc:
        status = 404 if isinstance(exc, AssessmentNotFoundError) else 422
        html = render("not_found.html", **_context(request, principal, message=exc.message))
        return _finish(request, page(html, status))
    live = "/ui/events?" + urlencode(
        {"view": "assessment", "id": found.assessment_id, "since": str(since)}
    )
    html = render(
        "detail.html", **_context(request, principal, a=found, trail=trail, live_url=live)
    )
    return _finish(request, page(html))


@router.post("/assessments/{assessment_id}/{action}")
async def act(request: Request, assessment_id: str, action: str) -> Response:
    fields = await form_of(request)
    here = f"/ui/assessments/{quote(assessment_id, safe='')}"
    try:
        principal = session.session_principal(request)
    except UnauthorizedError:
        return redirect("/ui/login?" + urlencode({"next": here}))
    response = redirect(here)
    try:
        session.check_csrf(request, fields.get(session.CSRF_FIELD))
        if action not in ACTIONS:
            raise InvalidInputError("action", "must be cancel or retry", action)
        version = _expected_version(fields.get("expectedVersion"))
        done = await _run_action(request, principal, assessment_id, action, version, fields)
    except AssessmentStoreError as exc:
        flash.put(response, request, "error", exc.message, exc.code)
        return response
    flash.put(response, request, "ok", done)
    return response


def _expected_version(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInputError("expectedVersion", "must be an integer", value) from None


async def _run_action(
    request: Request,
    principal: Principal,
    assessment_id: str,
    action: str,
    version: int | None,
    fields: dict[str, str],
) -> str:
    principal.require(*WRITERS)
    store = _store(request)
    if action == "cancel":
        reason = fields.get("reason", "").strip() or None
        changed = await run_in_threadpool(
            lambda: store.cancel_assessment(
                assessment_id,
                reason,
                owner=principal.owner,
                changed_by=principal.subject,
                expected_version=version,
            )
        )
        return f"cancelled (version {changed.version})"
    changed = await run_in_threadpool(
        lambda: store.retry_assessment(
            assessment_id,
            owner=principal.owner,
            changed_by=principal.subject,
            expected_version=version,
        )
    )
    return f"back to pending for another attempt (version {changed.version})"
