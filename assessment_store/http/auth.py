"""Bearer JWT authentication (HS256) and role checks.

Claims: ``sub`` (the caller; assessments it creates carry it as their creator) and
``role``: ``producer`` creates and reads its own assessments, ``viewer`` only reads its
own, ``admin`` reads and changes all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import jwt

from assessment_store.errors import ForbiddenError, InvalidInputError, UnauthorizedError
from assessment_store.inputs import check_text

ALGORITHM = "HS256"
# The creator's limit (assessments.created_by): a token's sub becomes its work's creator.
MAX_SUBJECT_CHARS = 255
# The default of ASSESSMENT_STORE_JWT_MAX_LIFETIME_SECONDS.
MAX_LIFETIME = timedelta(days=7)
LEEWAY_SECONDS = 1.0  # iat and exp are whole seconds
# Used only when the API or the token command is run with --dev, never otherwise.
DEVELOPMENT_SECRET = "assessment-store-development-only-secret-do-not-deploy"


class Role(StrEnum):
    PRODUCER = "producer"
    VIEWER = "viewer"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``owner`` is None for admins (they see every assessment)."""

    subject: str
    role: Role

    @property
    def owner(self) -> str | None:
        return None if self.role is Role.ADMIN else self.subject

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            allowed = ", ".join(r.value for r in roles)
            raise ForbiddenError(f"role {self.role.value!r} may not do this (needs {allowed})")


def check_subject(subject: object) -> str:
    """A token's ``sub``, or InvalidInputError. It becomes the creator of the caller's
    assessments, so it follows the creator's rule: non-empty text PostgreSQL can
    store, at most MAX_SUBJECT_CHARS. Checked where tokens are issued and presented."""
    if not isinstance(subject, str):
        raise InvalidInputError("sub", "must be a non-empty string", subject)
    check_text("sub", subject, max_chars=MAX_SUBJECT_CHARS, required=True)
    return subject


def parse_role(role: object) -> Role:
    """A token's ``role``, or InvalidInputError (checked where tokens are issued and
    presented)."""
    if isinstance(role, str) and role in {r.value for r in Role}:
        return Role(role)
    raise InvalidInputError("role", "must be producer, viewer or admin", role)


def issue_token(secret: str, subject: str, role: Role | str, ttl: timedelta) -> str:
    """A signed token for ``subject`` with ``role``, valid for ``ttl``; the claims are
    checked as :func:`authenticate` checks them, so it never issues one it refuses."""
    subject = check_subject(subject)
    role = parse_role(role)
    now = datetime.now(UTC)
    claims: dict[str, Any] = {"sub": subject, "role": role.value, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def authenticate(
    secret: str, authorization: str | None, *, max_lifetime: timedelta = MAX_LIFETIME
) -> Principal:
    """The principal of an ``Authorization: Bearer <JWT>`` header, or UnauthorizedError.

    ``exp`` is required and must be at most ``max_lifetime`` after ``iat`` (or after
    now, for a token without ``iat``): a token that never expires, or only in years,
    would outlive any leak."""
    if not authorization:
        raise UnauthorizedError("missing Authorization header (expected 'Bearer <token>')")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("Authorization header must be 'Bearer <token>'")
    try:
        claims = jwt.decode(
            token.strip(),
            secret,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "role", "exp"]},
        )
    except jwt.ExpiredSignatureError:
        raise UnauthorizedError("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise UnauthorizedError(f"invalid token: {exc}") from None
    check_lifetime(claims, max_lifetime)
    try:
        return Principal(check_subject(claims.get("sub")), parse_role(claims.get("role")))
    except InvalidInputError as exc:
        raise UnauthorizedError(f"invalid token: {exc.message}") from None


def check_lifetime(claims: dict[str, Any], max_lifetime: timedelta) -> None:
    """Refuse a token valid for longer than ``max_lifetime`` (PyJWT checked the types)."""
    issued = claims.get("iat")
    start = float(issued) if isinstance(issued, int | float) else datetime.now(UTC).timestamp()
    lifetime = float(claims["exp"]) - start
    if lifetime > max_lifetime.total_seconds() + LEEWAY_SECONDS:
        raise UnauthorizedError(
            f"invalid token: lifetime {lifetime:.0f}s exceeds the accepted maximum of "
            f"{max_lifetime.total_seconds():.0f}s"
        )
