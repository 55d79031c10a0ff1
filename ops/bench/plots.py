"""The report's pictures: throughput over time per system, and latency histograms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display here, ever
import matplotlib.pyplot as plt

from ops.bench.e2e import Round


def throughput(rounds: dict[str, list[Round]], labels: dict[str, str], out: Path) -> None:
    """Jobs done against seconds since the first enqueue, one line per system (its
    median round)."""
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    for name, results in rounds.items():
        median = sorted(results, key=lambda r: r.per_second)[len(results) // 2]
        xs = [t for t, _ in median.curve]
        ys = [n for _, n in median.curve]
        axes.plot(xs, ys, label=f"{labels[name]} ({median.per_second:.0f}/s)")
    axes.set_xlabel("seconds since the first enqueue")
    axes.set_ylabel("jobs finished")
    axes.set_title("End to end: no-op jobs finished over time (median round)")
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(out / "throughput.png")
    plt.close(figure)


def latencies(report: dict[str, Any], out: Path) -> None:
    """Histograms of the read and wake-up latencies, store against its baseline."""
    panels = [
        ("get_state (Python)", report["get_state_python"].get("_samples", {})),
        ("GET over HTTP", report["get_state_http"].get("_samples", {})),
        ("waiter wake-up", report["waiter_wake_up"].get("_samples", {})),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(12, 3.8), dpi=100)
    for axis, (title, samples) in zip(axes, panels, strict=True):
        for name, values in samples.items():
            if values:
                cut = sorted(values)[int(len(values) * 0.99) - 1]
                axis.hist([v for v in values if v <= cut], bins=60, alpha=0.55, label=name)
        axis.set_title(title)
        axis.set_xlabel("ms (up to p99)")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / "latency.png")
    plt.close(figure)
