"""``assessment-store api`` and ``assessment-store token``."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import Annotated

import typer

from assessment_store.cli.output import console, flag
from assessment_store.config import ENV_PREFIX, get_settings
from assessment_store.errors import InvalidInputError
from assessment_store.http.auth import DEVELOPMENT_SECRET, issue_token
from assessment_store.http.server import jwt_secret_for
from assessment_store.inputs import check_positive

PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def register(app: typer.Typer) -> None:
    app.command(context_settings=PASSTHROUGH)(api)
    app.command()(token)


def api(
    ctx: typer.Context,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    dev: Annotated[bool, flag("--dev", "allow the public development JWT secret")] = False,
) -> None:
    """Serve the HTTP API with uvicorn (further flags go to uvicorn)."""
    if dev:
        os.environ[f"{ENV_PREFIX}API_DEV_MODE"] = "true"
        get_settings.cache_clear()
    jwt_secret_for(get_settings())  # refuse here, with a clear message, not in uvicorn
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "assessment_store.http.server:app_from_environment",
        "--host",
        host,
        "--port",
        str(port),
        *_graceful_shutdown(ctx.args),
        *ctx.args,
    ]
    os.execv(sys.executable, command)


# Long-polls and dashboard streams stay open for minutes; at shutdown uvicorn would wait
# for them all. After this many seconds they are cut instead: a long-poll's client
# asks again, a dashboard's EventSource reconnects and resumes from its Last-Event-ID.
GRACEFUL_SHUTDOWN_SECONDS = 5


def _graceful_shutdown(args: list[str]) -> list[str]:
    if any(a.startswith("--timeout-graceful-shutdown") for a in args):
        return []
    return ["--timeout-graceful-shutdown", str(GRACEFUL_SHUTDOWN_SECONDS)]


def token(
    sub: Annotated[str, typer.Option("--sub", help="the caller's name (creator of its work)")],
    role: Annotated[
        str, typer.Option("--role", metavar="<producer|viewer|admin>", help="what it may do")
    ],
    ttl_hours: Annotated[
        float, typer.Option(help="hours it stays valid (at most JWT_MAX_LIFETIME_SECONDS)")
    ] = 24.0,
    dev: Annotated[bool, flag("--dev", "sign with the development secret")] = False,
) -> None:
    """Print a bearer token for the API."""
    settings = get_settings()
    # The API's own rules: it would refuse a token outside them (issue_token checks
    # sub and role the way authenticate does).
    ttl = _lifetime(ttl_hours, settings.jwt_max_lifetime_seconds)
    secret = (
        DEVELOPMENT_SECRET
        if dev and not settings.has_real_jwt_secret
        else (jwt_secret_for(settings))
    )
    console.print(issue_token(secret, sub, role, ttl), soft_wrap=True)


def _lifetime(hours: float, max_seconds: float) -> timedelta:
    seconds = check_positive("--ttl-hours", hours) * 3600
    if seconds > max_seconds:
        raise InvalidInputError(
            "--ttl-hours",
            f"must be at most {max_seconds / 3600:g} hours, the longest lifetime the API "
            f"accepts ({ENV_PREFIX}JWT_MAX_LIFETIME_SECONDS)",
            hours,
        )
    return timedelta(seconds=seconds)
