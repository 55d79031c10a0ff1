"""``assessment-store api`` and ``assessment-store token``."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import Annotated

import typer

from assessment_store.cli.output import console
from assessment_store.config import ENV_PREFIX, get_settings
from assessment_store.http.auth import DEVELOPMENT_SECRET, Role, issue_token
from assessment_store.http.server import jwt_secret_for

PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def register(app: typer.Typer) -> None:
    app.command(context_settings=PASSTHROUGH)(api)
    app.command()(token)


def api(
    ctx: typer.Context,
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    dev: Annotated[
        bool, typer.Option("--dev", help="allow the public development JWT secret")
    ] = False,
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
        *ctx.args,
    ]
    os.execv(sys.executable, command)


def token(
    sub: Annotated[str, typer.Option("--sub", help="the caller's name (creator of its work)")],
    role: Annotated[Role, typer.Option("--role")],
    ttl_hours: Annotated[float, typer.Option(min=0.01, max=24 * 365)] = 24.0,
    dev: Annotated[bool, typer.Option("--dev", help="sign with the development secret")] = False,
) -> None:
    """Print a bearer token for the API."""
    settings = get_settings()
    secret = (
        DEVELOPMENT_SECRET
        if dev and not settings.has_real_jwt_secret
        else (jwt_secret_for(settings))
    )
    console.print(issue_token(secret, sub, role, timedelta(hours=ttl_hours)), soft_wrap=True)
