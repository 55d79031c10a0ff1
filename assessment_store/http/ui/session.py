"""The dashboard's sign-in: the JWT in an HttpOnly cookie, and CSRF protection.

Why a cookie and not session storage: a token in session storage is readable by any
script that runs in the page, so one XSS hole hands it out; an HttpOnly cookie is
never visible to scripts. The live stream (EventSource) cannot send an Authorization
header either, and a token in its URL would end up in access logs. The cookie's risk
is CSRF (the browser sends it with requests other sites trigger), closed three ways:
``SameSite=Strict`` (no cross-site request carries it), a form token derived from the
session that another site cannot know (checked on every POST), and an ``Origin``
check. XSS itself is held off by Jinja's autoescaping and a strict Content Security
Policy (scripts only from this origin's /ui/static, no inline script).

The cookie holds the very token the API takes, so the dashboard authorises exactly as
``/v1`` does (``auth.authenticate``), expiry and lifetime limits included.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import timedelta
from urllib.parse import urlsplit

import jwt
from fastapi import Request, Response

from assessment_store.errors import ForbiddenError, UnauthorizedError
from assessment_store.http.auth import Principal, authenticate

SESSION_COOKIE = "assessment_store_session"
COOKIE_PATH = "/ui"
CSRF_FIELD = "csrf"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _secret(request: Request) -> str:
    secret: str = request.app.state.jwt_secret
    return secret


def _max_lifetime(request: Request) -> timedelta:
    lifetime: timedelta = request.app.state.jwt_max_lifetime
    return lifetime


def principal_from_token(request: Request, token: str) -> Principal:
    """The principal of ``token``, checked as the API checks a Bearer token."""
    return authenticate(
        _secret(request), f"Bearer {token.strip()}", max_lifetime=_max_lifetime(request)
    )


def session_token(request: Request) -> str:
    """The signed-in token, or UnauthorizedError."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise UnauthorizedError("not signed in")
    return token


def session_principal(request: Request) -> Principal:
    """Who is signed in (UnauthorizedError: nobody, or an expired token)."""
    return principal_from_token(request, session_token(request))


def seconds_left(token: str) -> float:
    """Seconds until ``token`` expires (its signature was already checked)."""
    claims = jwt.decode(token.strip(), options={"verify_signature": False})
    return float(claims["exp"]) - time.time()


def sign_in(request: Request, response: Response, token: str) -> None:
    """Keep ``token`` (already authenticated) in the session cookie until it expires."""
    response.set_cookie(
        SESSION_COOKIE,
        token.strip(),
        max_age=max(1, int(seconds_left(token))),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def sign_out(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


def csrf_token(request: Request) -> str:
    """The form token of this session: an HMAC of the session's token, which a page
    of another site can neither read nor compute."""
    token = request.cookies.get(SESSION_COOKIE, "")
    return hmac.new(
        _secret(request).encode(), b"csrf\x00" + token.encode(), hashlib.sha256
    ).hexdigest()


def check_same_origin(request: Request) -> None:
    """ForbiddenError for a POST another site made the browser send."""
    origin = request.headers.get("origin")
    if origin is not None and origin != "null":
        parts = urlsplit(origin)
        if parts.netloc != request.headers.get("host", "") or parts.scheme != request.url.scheme:
            raise ForbiddenError("cross-origin request refused")
    elif origin == "null":
        raise ForbiddenError("cross-origin request refused")


def check_csrf(request: Request, submitted: str | None) -> None:
    """ForbiddenError unless the form carries this session's token."""
    check_same_origin(request)
    if not submitted or not hmac.compare_digest(submitted, csrf_token(request)):
        raise ForbiddenError("the form has expired or did not come from this dashboard; reload it")
