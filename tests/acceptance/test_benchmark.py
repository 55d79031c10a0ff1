"""The benchmark itself runs: every section, every baseline, a report that holds up.

A smoke run (``--quick``: a few hundred jobs per system) with real workers for every
system; the figures are not judged here (speed is measured by ops/bench/run.sh, never
asserted in a test), only that each one was measured and is consistent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = {
    "plain_celery",
    "celery_store_settings",
    "procrastinate",
    "naive_loop",
    "tuned_loop",
    "store",
    "store_events_on",
}


def test_a_quick_benchmark_run_measures_every_system_and_section(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ops.bench.run", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        # Not under the suite's coverage tracer: a benchmark measures the code, and its
        # several systems' workers cost a third more time traced (ops/ is not measured).
        env={k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")},
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    results = report["end_to_end"]["results"]
    assert set(results) == SYSTEMS
    for name, figures in results.items():
        assert figures["median_per_s"] > 0, name
        assert figures["min_per_s"] <= figures["median_per_s"] <= figures["max_per_s"], name
        assert figures["cpu_ms_per_job"]["total"] > 0, name
    # Every waiter of the in-flight section got its assessment, completed.
    in_flight = report["in_flight"]
    assert in_flight["waits_answered_200"] == in_flight["assessments_and_waiters"]
    # A pool's worth of connections at most, however many waiters.
    limit = in_flight["database_pool_size"] + in_flight["database_max_overflow"]
    assert 0 < in_flight["api_database_connections_peak"] <= limit + 2
    overtake = report["overtake"]
    assert (
        overtake["low_run_before_high_after_it_arrived"]
        <= (overtake["low_still_waiting_when_high_arrived"])
    )
    assert report["worker_memory"]["assessments"] >= 1_000
    # The load sections sampled as they went, and judged growth (exit 0: none).
    assert len(report["in_flight"]["api_rss_mb_peak_per_wave"]) == 2
    assert report["in_flight"]["samples"] and report["soak"]["worker_connections"]
    assert all(c > 0 for _, c in report["soak"]["worker_connections"][1:])
    assert {c["check"] for c in report["load_checks"]} and all(
        c["ok"] for c in report["load_checks"]
    )
    targets = {t["target"]: t for t in report["targets"]}
    assert len(targets) == 9 and all(isinstance(t["met"], bool) for t in targets.values())
    for name in ("throughput.png", "latency.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    table = (tmp_path / "report.md").read_text()
    assert "| the store, no-op assessments |" in table and "## Targets" in table
