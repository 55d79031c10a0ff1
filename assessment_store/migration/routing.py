"""Which side a new assessment goes to: a stable hash of its id against the percentage.

``bucket(id)`` is the first 8 bytes of SHA-256 of the id (UTF-8), read as an unsigned
big-endian integer, modulo 100: a number 0-99 that depends on the id alone, the same
in every process, on every machine and in every Python version (unlike ``hash()``,
which is salted per process). An id goes to the store when its bucket is below the
percentage. So:

- at 0% nothing goes to the store, at 100% everything does;
- raising the percentage only moves buckets from the legacy side to the store (an id
  routed to the store at 25% also goes there at 50%), and lowering it moves them back;
- ids spread evenly: each bucket takes 1% of random (uuid4) ids.

Routing decides where *new* work goes; an assessment stays for life on the side that
created it (the facade finds it there).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

BUCKETS: Final = 100


class Side(StrEnum):
    """Where an assessment lives."""

    STORE = "store"
    LEGACY = "legacy"


class Reason(StrEnum):
    """Why a create went where it went (a metrics label and an audit log field)."""

    HASH = "hash"  # bucket against the percentage
    STORE_DISABLED = "store_disabled"  # MIGRATION_ENABLE_STORE off
    EXISTING = "existing"  # a client id already held by that side (idempotent repeat)
    FALLBACK = "fallback"  # the store failed and MIGRATION_LEGACY_FALLBACK is on


@dataclass(frozen=True, slots=True)
class Route:
    """One routing decision."""

    side: Side
    reason: Reason
    bucket: int
    percentage: int


def bucket(assessment_id: str) -> int:
    """The id's stable bucket, 0-99 (see the module docstring)."""
    digest = hashlib.sha256(assessment_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def routes_to_store(assessment_id: str, percentage: int) -> bool:
    """Whether a new assessment with this id goes to the store at ``percentage``."""
    return bucket(assessment_id) < percentage


def decide(assessment_id: str, *, percentage: int, enable_store: bool) -> Route:
    """The side for a new assessment: legacy when the store is disabled, else by hash."""
    position = bucket(assessment_id)
    if not enable_store:
        return Route(Side.LEGACY, Reason.STORE_DISABLED, position, percentage)
    side = Side.STORE if position < percentage else Side.LEGACY
    return Route(side, Reason.HASH, position, percentage)
