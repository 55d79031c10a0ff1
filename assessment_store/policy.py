"""The store's policies, one home each: retry and backoff, attempt time limits, and
what counts as finished or a dead letter. Pure (no I/O).

Backoff: the n-th retry (n = retry_count, starting at 0) waits between half and all of
``min(cap, base * 2**n)`` seconds ("equal jitter"): never zero (no thundering herd of
instant retries), never above the cap, and spread so that failures at the same moment
do not retry at the same moment.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Final

from assessment_store.config import Settings
from assessment_store.states import AssessmentState

MAX_EXPONENT = 62  # 2**62 seconds is beyond any cap; stops float overflow for huge counts

# An attempt shorter than this cannot even claim its row and start a handler reliably:
# a timeout below it is refused at creation (SPEC section 4), naming ``timeout``.
MIN_ATTEMPT_TIMEOUT_SECONDS: Final = 1.0
# Past the soft time limit the handler gets this long to stop before the child is
# killed (the worker then records the time-out itself; see workers.timeouts).
HARD_LIMIT_GRACE_SECONDS: Final = 5.0

# Finished for a waiter: nothing more will happen on its own.
FINAL_STATES: Final = frozenset({AssessmentState.COMPLETED, AssessmentState.CANCELLED})


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


def next_retry_at(
    settings: Settings, retry_count: int, now: datetime, *, permanent: bool = False
) -> datetime | None:
    """When a failed attempt is retried automatically, or None (permanent, or retries
    used up: a dead letter)."""
    if permanent or retry_count >= settings.max_retries:
        return None
    delay = retry_delay_seconds(
        retry_count, settings.retry_backoff_seconds, settings.retry_backoff_max_seconds
    )
    return now + timedelta(seconds=delay)


def attempt_timeout_seconds(requested_seconds: float | None, settings: Settings) -> float:
    """How long one attempt may run: what the request asked for (its ``timeout``, else
    ``options.timeout``), else DEFAULT_TIMEOUT_SECONDS."""
    return requested_seconds or settings.default_timeout_seconds


def time_limits(timeout_seconds: float) -> tuple[float, float]:
    """(soft, hard) Celery time limits for an attempt of ``timeout_seconds``."""
    return timeout_seconds, timeout_seconds + HARD_LIMIT_GRACE_SECONDS


def timeout_problem(requested_seconds: float | None, settings: Settings) -> str | None:
    """Why a request's attempt time limit cannot work, or None."""
    seconds = attempt_timeout_seconds(requested_seconds, settings)
    if seconds < MIN_ATTEMPT_TIMEOUT_SECONDS:
        return f"must be at least {MIN_ATTEMPT_TIMEOUT_SECONDS:g} second (the unit is seconds)"
    limit = settings.broker_visibility_timeout_seconds
    hard = time_limits(seconds)[1]
    if hard >= limit:
        below = limit - HARD_LIMIT_GRACE_SECONDS
        hint = (
            f"; {seconds:g} looks like milliseconds: {seconds / 1000:g} seconds?"
            if seconds / 1000 < below
            else ""
        )
        return (
            f"must be below {below:g} seconds (the broker's visibility timeout, "
            f"ASSESSMENT_STORE_BROKER_VISIBILITY_TIMEOUT_SECONDS, less "
            f"{HARD_LIMIT_GRACE_SECONDS:g}s of grace; the unit is seconds{hint})"
        )
    return None


def is_finished(state: AssessmentState, next_retry: datetime | None) -> bool:
    """Completed, cancelled, or failed with no automatic retry coming."""
    return state in FINAL_STATES or is_dead_letter(state, next_retry)


def is_dead_letter(state: AssessmentState, next_retry: datetime | None) -> bool:
    """Failed with no automatic retry coming: it waits for a human."""
    return state is AssessmentState.FAILED and next_retry is None
