"""The request body guard: a size limit on the bytes actually sent, and JSON that
FastAPI would otherwise turn into a 400 outside the contract.

The body is read here, before the app sees it, so a chunked body over the limit gets
413 ``PAYLOAD_TOO_LARGE`` just as a declared one does (counting inside the app's own
read would surface as FastAPI's generic 400 "error parsing the body"), and a JSON
body that is not UTF-8, holds NaN or Infinity, or a number too long for Python to
parse gets 422 ``VALIDATION_ERROR`` naming ``body``. The body, at most the limit, is
then replayed to the app.
"""

from __future__ import annotations

import json
from email.message import Message as MimeMessage
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assessment_store.http.errors import error_body


class BodySizeLimit:
    """ASGI middleware: 413 past ``max_bytes``; 422 for a JSON body JSON cannot hold."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length")
        if declared is None and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body at all: nothing to guard
            return
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(send, 413, "PAYLOAD_TOO_LARGE", self._too_large())
            return
        body = await self._read(receive)
        if body is None:
            await _refuse(send, 413, "PAYLOAD_TOO_LARGE", self._too_large())
            return
        if body and _is_json(headers.get(b"content-type")):
            problem = json_problem(body)
            if problem is not None:
                await _refuse(send, 422, "VALIDATION_ERROR", problem, field="body")
                return
        await self.app(scope, _replay(body, receive), send)

    def _too_large(self) -> str:
        return f"request body is larger than {self.max_bytes} bytes"

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None as soon as it passes the limit (the rest unread)."""
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)  # the client went away; the app will see it
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that yields the buffered body once, then the client's own messages
    (a long-poll still learns of a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _is_json(content_type: bytes | None) -> bool:
    """As FastAPI decides: no content type, or application/json or */*+json."""
    if content_type is None:
        return True
    mime = MimeMessage()
    mime["content-type"] = content_type.decode("latin-1")
    subtype = mime.get_content_subtype()
    return mime.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (numbers must be finite)")


def json_problem(body: bytes) -> str | None:
    """Why ``body`` is not a JSON document the API can read, or None."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8 (byte {body[exc.start]:#04x} at offset {exc.start})"
    try:
        json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        return f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except ValueError as exc:  # NaN/Infinity, or an integer past Python's digit limit
        message = str(exc)
        if "digits" in message:
            return "a number has too many digits"
        return message
    except RecursionError:
        return "nested too deeply"
    return None


async def _refuse(send: Send, status: int, code: str, message: str, **extra: Any) -> None:
    if "field" in extra:  # the shape of every other validation error
        details = [{"field": extra["field"], "message": message}]
        payload = error_body(code, f"{extra['field']}: {message}", details=details)
    else:
        payload = error_body(code, message)
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
