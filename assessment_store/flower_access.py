"""Who may reach Flower, and where it listens: the one home of that decision.

Flower is the cluster's control panel (it can revoke tasks, resize pools, shut workers
down), so every Flower started with the project's app serves its UI and API only
behind credentials. They come from ``ASSESSMENT_STORE_FLOWER_BASIC_AUTH`` and reach
Flower through its environment, never its command line (``ps`` shows a command line to
every local user). Running without them takes an explicit opt-out
(``ASSESSMENT_STORE_FLOWER_UNAUTHENTICATED``), on a loopback address only, and never in
production. Flower's ``/metrics`` and ``/healthcheck`` stay open: Flower serves them so
(Prometheus and probes), and they carry no secret.

Two callers apply it: ``assessment-store flower`` checks before it starts Celery (a
clear error and exit code 3), and ``workers.flower_guard`` applies it to Flower's
final options however Flower was started (``celery -A workers flower`` too).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from assessment_store.config import ENV_PREFIX, PLACEHOLDER_SECRETS, Settings
from assessment_store.errors import ConfigurationError

CREDENTIALS_VARIABLE = f"{ENV_PREFIX}FLOWER_BASIC_AUTH"
OPT_OUT_VARIABLE = f"{ENV_PREFIX}FLOWER_UNAUTHENTICATED"
# Flower binds every interface when given no address; the project's default is the
# loopback one, as for the API and the worker's metrics.
DEFAULT_ADDRESS = "127.0.0.1"
LOOPBACK_ADDRESSES = frozenset({"127.0.0.1", "::1", "localhost"})
# Flower's option of that name, however it is spelled on a command line.
CREDENTIALS_OPTION = "basic_auth"


@dataclass(frozen=True)
class FlowerAccess:
    """What Flower is to be started with."""

    basic_auth: tuple[str, ...]  # user:password pairs; empty only when unauthenticated
    address: str
    # Flower's API answers 401 to everyone when no auth is configured, unless told
    # (FLOWER_UNAUTHENTICATED_API) that this is intended.
    unauthenticated_api: bool


def credentials_on_command_line(arguments: Iterable[str]) -> bool:
    """Whether ``arguments`` give Flower credentials (``--basic-auth=...``, any spelling)."""
    return any(
        argument.startswith("-")
        and argument.lstrip("-").partition("=")[0].replace("-", "_") == CREDENTIALS_OPTION
        for argument in arguments
    )


def decide(
    settings: Settings,
    *,
    address: str,
    flower_basic_auth: Sequence[str] = (),
    flower_oauth: bool = False,
    on_command_line: bool = False,
) -> FlowerAccess:
    """The access for a Flower asked to listen on ``address`` ('' for Flower's default).

    ``flower_basic_auth`` and ``flower_oauth`` are what Flower found on its own
    (``FLOWER_BASIC_AUTH``, ``FLOWER_AUTH`` with OAuth): still credentials from the
    environment, so they are honoured when the project's setting is unset.
    ``on_command_line``: credentials were given as a Flower argument. Raises
    :class:`ConfigurationError` (one line, never the credentials) to refuse.
    """
    if on_command_line:
        raise ConfigurationError(
            "Flower's credentials were given on its command line, where ps shows them to "
            f"every local user: set {CREDENTIALS_VARIABLE} instead"
        )
    bind = address or DEFAULT_ADDRESS
    if settings.flower_basic_auth:
        pairs = tuple(settings.flower_basic_auth.split(","))
        if settings.environment == "production" and any(map(_is_placeholder, pairs)):
            raise ConfigurationError(
                f"{CREDENTIALS_VARIABLE} has a placeholder password (as in the examples): "
                "set a real one when ASSESSMENT_STORE_ENVIRONMENT is production"
            )
        return FlowerAccess(basic_auth=pairs, address=bind, unauthenticated_api=False)
    if flower_basic_auth or flower_oauth:
        return FlowerAccess(tuple(flower_basic_auth), address=bind, unauthenticated_api=False)
    if not settings.flower_unauthenticated:
        raise ConfigurationError(
            f"Flower needs credentials: set {CREDENTIALS_VARIABLE} (user:password), or "
            f"{OPT_OUT_VARIABLE}=true (assessment-store flower --unauthenticated) to run it "
            "without auth on a loopback address"
        )
    if settings.environment == "production":
        raise ConfigurationError(
            f"{OPT_OUT_VARIABLE} cannot be used when {ENV_PREFIX}ENVIRONMENT is production: "
            f"set {CREDENTIALS_VARIABLE}"
        )
    if bind not in LOOPBACK_ADDRESSES:
        raise ConfigurationError(
            f"Flower without credentials listens on a loopback address only, not {bind!r}: "
            f"set {CREDENTIALS_VARIABLE} to serve it elsewhere"
        )
    return FlowerAccess(basic_auth=(), address=bind, unauthenticated_api=True)


def _is_placeholder(pair: str) -> bool:
    return pair.partition(":")[2].strip().lower() in PLACEHOLDER_SECRETS
