"""Retry backoff: exponential with a cap and "equal jitter". Pure.

The n-th retry (n = retry_count, starting at 0) waits between half and all of
``min(cap, base * 2**n)`` seconds: never zero (no thundering herd of instant
retries), never above the cap, and spread so that failures at the same moment
do not retry at the same moment.
"""

from __future__ import annotations

import random

MAX_EXPONENT = 62  # 2**62 seconds is beyond any cap; stops float overflow for huge counts


def backoff_ceiling_seconds(retry_count: int, base_seconds: float, cap_seconds: float) -> float:
    """The un-jittered delay for the ``retry_count``-th retry: min(cap, base * 2**n)."""
    if retry_count < 0:
        raise ValueError(f"retry_count must be >= 0, got {retry_count}")
    return min(cap_seconds, base_seconds * 2.0 ** min(retry_count, MAX_EXPONENT))


def retry_delay_seconds(
    retry_count: int,
    base_seconds: float,
    cap_seconds: float,
    rng: random.Random | None = None,
) -> float:
    """The jittered delay: uniform in [ceiling / 2, ceiling]."""
    ceiling = backoff_ceiling_seconds(retry_count, base_seconds, cap_seconds)
    draw = (rng or random).random()
    return ceiling / 2 + draw * ceiling / 2
