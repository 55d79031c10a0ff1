"""Every error as ``{"error": {"code": ..., "message": ...}}`` with the right status.

Domain errors carry their code and status; request validation names the field; an
unexpected failure is a 500 with a generic message (and a log line), never a
traceback in the response.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from assessment_store.errors import AssessmentStoreError
from assessment_store.outages import OutageLog

logger = logging.getLogger("assessment_store.http")
REQUEST_OUTAGES = OutageLog(logger)

# Each domain error code's HTTP status: the HTTP edge's decision, nobody else's.
STATUS_OF_CODE = {
    "ASSESSMENT_NOT_FOUND": 404,
    "ASSESSMENT_TIMEOUT": 408,
    "INVALID_STATE_TRANSITION": 409,
    "VERSION_CONFLICT": 409,
    "ASSESSMENT_CONFLICT": 409,
    "ASSESSMENT_CANCELLED": 409,
    "ATTEMPT_SUPERSEDED": 409,
    "VALIDATION_ERROR": 422,
    "PERMANENT_FAILURE": 422,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "STORE_UNAVAILABLE": 503,
    # A stored value this process cannot decrypt (ENCRYPTION_KEYS): a server fault.
    "DECRYPTION_FAILED": 500,
}
HTTP_CODES = {
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "ASSESSMENT_TIMEOUT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


# An error body stays small whatever the request was: at most this many details,
# each field name and message cut to a bounded length (a body of 50,000 unknown
# keys must not get a 6 MB answer).
MAX_DETAILS = 20
MAX_FIELD_CHARS = 120
MAX_DETAIL_MESSAGE_CHARS = 300


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _plain(message: str) -> str:
    # pydantic prefixes a validator's own ValueError text; the problem is the message.
    return message.removeprefix("Value error, ")


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return _clip(".".join(parts) or "body", MAX_FIELD_CHARS)


def validation_response(errors: list[Any]) -> JSONResponse:
    """422 VALIDATION_ERROR: the first error in ``message`` (with how many more),
    the first MAX_DETAILS of them in ``details``."""
    details = [
        {
            "field": _field(tuple(e.get("loc", ()))),
            "message": _clip(_plain(str(e.get("msg", ""))), MAX_DETAIL_MESSAGE_CHARS),
        }
        for e in errors[:MAX_DETAILS]
    ]
    if details:
        message = f"{details[0]['field']}: {details[0]['message']}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more error(s))"
    else:
        message = "invalid request"
    return JSONResponse(
        status_code=422, content=error_body("VALIDATION_ERROR", message, details=details)
    )


def install(app: FastAPI) -> None:
    """Register the handlers that turn exceptions into the error body."""

    @app.exception_handler(AssessmentStoreError)
    async def _domain(request: Request, exc: AssessmentStoreError) -> JSONResponse:
        status = STATUS_OF_CODE.get(exc.code, 500)
        if status >= 500:  # the store unavailable: an outage, news once per minute
            REQUEST_OUTAGES.failed(f"request_failed: {exc.code}", exc, request.url.path)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(
            status_code=status, content=error_body(exc.code, exc.message), headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(list(exc.errors()))

    @app.exception_handler(ValidationError)
    async def _model_validation(request: Request, exc: ValidationError) -> JSONResponse:
        return validation_response(list(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # A body FastAPI could not parse (the body guard catches the known cases
            # first): bad input, so the contract's 422, never an extra code.
            return validation_response([{"loc": ("body",), "msg": str(exc.detail)}])
        code = HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        return JSONResponse(
            status_code=exc.status_code,
            content=error_body(code, str(exc.detail)),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled_error: %s %s", request.method, request.url.path)
        return JSONResponse(
            status_code=500, content=error_body("INTERNAL_ERROR", "internal server error")
        )
