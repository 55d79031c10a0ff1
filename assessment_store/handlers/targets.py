"""Parsing a request's ``serverName`` into something to connect to."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from assessment_store.errors import PermanentAssessmentError


@dataclass(frozen=True)
class Target:
    """Where to connect: host and port, and the URL when one was given."""

    host: str
    port: int
    url: str | None

    @property
    def scheme(self) -> str | None:
        return urlsplit(self.url).scheme if self.url else None

    def __str__(self) -> str:
        return self.url or f"{self.host}:{self.port}"


# The built-in types that connect to their serverName: a request for one of them
# without a usable target could never run, so creation refuses it (see creation).
TYPES_NEEDING_A_TARGET = frozenset({"health", "security"})


# The ASCII characters a host name may hold (non-ASCII ones are left to IDNA).
HOST_NAME_ASCII = re.compile(r"[A-Za-z0-9._-]")


class _BadTargetError(ValueError):
    """Why a serverName is not something to connect to (without the field name)."""


def parse_target(server_name: str | None, *, default_port: int) -> Target:
    """``host``, ``host:port``, ``[v6]:port`` or an ``http(s)://`` URL."""
    try:
        return _parse(server_name, default_port)
    except _BadTargetError as exc:
        raise PermanentAssessmentError(f"serverName: {exc}") from None


def target_problem(server_name: str | None) -> str | None:
    """Why ``server_name`` could not be connected to, or None (checked at creation)."""
    try:
        _parse(server_name, default_port=1)
    except _BadTargetError as exc:
        return str(exc)
    return None


def _parse(server_name: str | None, default_port: int) -> Target:
    if not server_name or not server_name.strip():
        raise _BadTargetError("required for this assessment type")
    text = server_name.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _BadTargetError(f"{server_name!r} is not an http(s) URL or host:port")
        port = _port(parts, 443 if parts.scheme == "https" else 80, server_name)
        return Target(_host(parts.hostname, server_name), port, text)
    parts = urlsplit(f"//{text}")
    port = _port(parts, default_port, server_name)
    if not parts.hostname or parts.path or parts.query or parts.fragment:
        raise _BadTargetError(f"{server_name!r} is not host or host:port")
    return Target(_host(parts.hostname, server_name), port, None)


def _port(parts: SplitResult, default: int, server_name: str) -> int:
    try:
        return parts.port or default
    except ValueError:
        raise _BadTargetError(f"bad port in {server_name!r}") from None


def _host(hostname: str, server_name: str) -> str:
    # What the resolver will do with it: a name IDNA cannot encode (an empty label, a
    # label over 63 characters, characters no host name holds) fails every attempt.
    try:
        ipaddress.ip_address(hostname)
        return hostname
    except ValueError:
        pass
    try:
        hostname.encode("idna")
    except UnicodeError:
        raise _BadTargetError(f"{server_name!r} is not a valid host name") from None
    if any(char.isascii() and not HOST_NAME_ASCII.match(char) for char in hostname):
        raise _BadTargetError(f"{server_name!r} is not a valid host name")
    return hostname
