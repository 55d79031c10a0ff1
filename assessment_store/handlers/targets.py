"""Parsing a request's ``serverName`` into something to connect to."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

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


def parse_target(server_name: str | None, *, default_port: int) -> Target:
    """``host``, ``host:port``, ``[v6]:port`` or an ``http(s)://`` URL."""
    if not server_name:
        raise PermanentAssessmentError("serverName: required for this assessment type")
    text = server_name.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PermanentAssessmentError(
                f"serverName: {server_name!r} is not an http(s) URL or host:port"
            )
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise PermanentAssessmentError(f"serverName: bad port in {server_name!r}") from exc
        return Target(parts.hostname, port, text)
    parts = urlsplit(f"//{text}")
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise PermanentAssessmentError(f"serverName: bad port in {server_name!r}") from exc
    if not parts.hostname or parts.path or parts.query:
        raise PermanentAssessmentError(f"serverName: {server_name!r} is not host or host:port")
    return Target(parts.hostname, port, None)
