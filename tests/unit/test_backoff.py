"""Backoff properties: bounds, the cap, monotone growth, and the jitter range."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assessment_store.policy import backoff_ceiling_seconds, retry_delay_seconds

counts = st.integers(min_value=0, max_value=10_000)
bases = st.floats(min_value=0.001, max_value=3600, allow_nan=False)
caps = st.floats(min_value=0.001, max_value=86_400, allow_nan=False)


@given(counts, bases, caps, st.integers(min_value=0, max_value=2**32))
def test_a_delay_lies_between_half_and_all_of_the_capped_ceiling(
    n: int, base: float, cap: float, seed: int
) -> None:
    ceiling = backoff_ceiling_seconds(n, base, cap)
    delay = retry_delay_seconds(n, base, cap, random.Random(seed))
    assert ceiling <= cap
    assert ceiling / 2 <= delay <= ceiling
    assert delay > 0


@given(counts, bases, caps)
def test_the_ceiling_never_shrinks_as_retries_grow(n: int, base: float, cap: float) -> None:
    assert backoff_ceiling_seconds(n, base, cap) <= backoff_ceiling_seconds(n + 1, base, cap)


@given(st.integers(min_value=0, max_value=20), bases)
def test_below_the_cap_the_ceiling_doubles_each_retry(n: int, base: float) -> None:
    huge_cap = 1e12
    assert backoff_ceiling_seconds(n, base, huge_cap) == pytest.approx(base * 2**n)


def test_jitter_spreads_delays_over_the_upper_half() -> None:
    rng = random.Random(7)
    delays = [retry_delay_seconds(3, 1.0, 100.0, rng) for _ in range(2000)]
    assert min(delays) < 4.2
    assert max(delays) > 7.8
    assert all(4.0 <= d <= 8.0 for d in delays)


def test_a_negative_retry_count_is_refused() -> None:
    with pytest.raises(ValueError, match="retry_count"):
        backoff_ceiling_seconds(-1, 1.0, 10.0)
