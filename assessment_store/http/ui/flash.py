"""One-time messages after an action (Post/Redirect/Get): a signed, short-lived cookie.

Signed so that a link cannot make the dashboard display a message it never gave."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from fastapi import Request, Response

from assessment_store.http.ui.session import COOKIE_PATH

FLASH_COOKIE = "assessment_store_flash"
MAX_AGE_SECONDS = 60
_TAKEN = "assessment_store_flash_taken"


@dataclass(frozen=True)
class Flash:
    kind: str  # "ok" or "error"
    message: str
    code: str = ""


def _signature(request: Request, payload: str) -> str:
    secret: str = request.app.state.jwt_secret
    return hmac.new(secret.encode(), b"flash\x00" + payload.encode(), hashlib.sha256).hexdigest()


def put(response: Response, request: Request, kind: str, message: str, code: str = "") -> None:
    payload = base64.urlsafe_b64encode(
        json.dumps({"kind": kind, "message": message[:500], "code": code}).encode()
    ).decode()
    response.set_cookie(
        FLASH_COOKIE,
        f"{payload}.{_signature(request, payload)}",
        max_age=MAX_AGE_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def take(request: Request) -> Flash | None:
    """The pending message, if any and genuine (it is cleared by clear_if_taken)."""
    value = request.cookies.get(FLASH_COOKIE)
    if not value:
        return None
    payload, _, signature = value.partition(".")
    setattr(request.state, _TAKEN, True)
    if not hmac.compare_digest(signature, _signature(request, payload)):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode()))
        return Flash(str(data["kind"]), str(data["message"]), str(data.get("code", "")))
    except (ValueError, KeyError, TypeError):
        return None


def clear_if_taken(request: Request, response: Response) -> None:
    if getattr(request.state, _TAKEN, False):
        response.delete_cookie(FLASH_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
