"""Percentiles of latency samples (demo summary, benchmarks)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: int) -> float:
    """The q-th percentile (1-100) by the inclusive method; the sample for one sample."""
    if not samples:
        raise ValueError("no samples")
    if not 1 <= q <= 100:
        raise ValueError(f"q must be 1-100, got {q}")
    if len(samples) == 1 or q == 100:
        return max(samples)
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]
