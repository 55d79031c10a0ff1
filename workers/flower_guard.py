"""Every Flower started with this app serves only behind credentials, however it was
started: ``celery -A workers flower``, ``python -m flower -A workers`` or
``assessment-store flower`` (the decision itself is assessment_store.flower_access).

Flower gathers its options (FLOWER_* variables, its command line, flowerconfig.py) into
tornado's global options and then runs tornado's parse callbacks, before it makes its
web application or binds a socket: the one moment every source is known and nothing
listens yet. The callback below puts the project's credentials into those options
(from the environment, so never on a command line), gives Flower a loopback address
unless it was given one, or stops it with a one-line error.
"""

from __future__ import annotations

import os
import sys

import click

from assessment_store.config import get_settings
from assessment_store.errors import ConfigurationError
from assessment_store.flower_access import (
    CREDENTIALS_OPTION,
    DEFAULT_ADDRESS,
    credentials_on_command_line,
    decide,
)

UNAUTHENTICATED_API_VARIABLE = "FLOWER_UNAUTHENTICATED_API"


def install() -> None:
    """Guard Flower's options in this process (harmless where Flower never runs: tornado
    options are parsed by Flower only)."""
    try:
        from tornado.options import options
    except ImportError:  # no Flower installed, so none to guard
        return
    options.add_parse_callback(guard)


def guard() -> None:
    """Apply the access decision to Flower's parsed options, or refuse to start."""
    from tornado.options import options

    if CREDENTIALS_OPTION not in options:
        return  # tornado options parsed by something that is not Flower
    try:
        access = decide(
            get_settings(),
            # A unix socket (Flower's --unix-socket) is local, like a loopback address.
            address=DEFAULT_ADDRESS if options.unix_socket else options.address,
            flower_basic_auth=options.basic_auth or (),
            flower_oauth=bool(options.auth),
            on_command_line=credentials_on_command_line(sys.argv[1:]),
        )
    except ConfigurationError as exc:
        # Click prints "Error: <message>" and exits 1: no traceback, no secret.
        raise click.ClickException(str(exc)) from None
    options.basic_auth = list(access.basic_auth)
    options.address = access.address
    if access.unauthenticated_api:
        os.environ[UNAUTHENTICATED_API_VARIABLE] = "true"
