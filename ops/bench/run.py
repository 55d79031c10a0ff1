"""The benchmark: the store against baselines it runs itself, in one process tree.

Run ``ops/bench/run.sh`` (or ``assessment-store bench``); ``--quick`` is a smoke run.
It writes ``report.json``, ``report.md`` and PNG plots to ``--out`` (default
``.ops-data/bench/``) and prints the Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import redis

from assessment_store import AssessmentStore, load_settings
from assessment_store.config import Settings
from ops.bench import dashboards, e2e, plots, sections
from ops.bench.common import redis_db_url, scratch_database
from ops.bench.targets import check_targets, dashboard_targets, load_checks, markdown

ROOT = Path(__file__).resolve().parents[2]
PUBLISH_SINK_REDIS_DB = 8  # batch-create publishes land here, never consumed
ONE_ROUND = frozenset({"store_events_on"})
SECTIONS = ("dashboards",)  # the sections --only can run by themselves


def _machine() -> dict[str, Any]:
    return {
        "cpus": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000, help="no-op jobs per system")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--soak", type=int, default=50_000, help="assessments for memory")
    parser.add_argument("--out", type=Path, default=ROOT / ".ops-data" / "bench")
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke run")
    parser.add_argument("--only", choices=SECTIONS, help="run this section only")
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.rounds, args.soak = 300, 1, 1_000
    per_round = max(1, args.jobs // args.rounds)
    small = args.quick
    started = time.monotonic()
    report: dict[str, Any] = {
        "machine": _machine(),
        "settings": vars(args) | {"out": str(args.out)},
    }
    base = load_settings()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only == "dashboards":
        with scratch_database() as url, tempfile.TemporaryDirectory() as logs_dir:
            report["dashboards"] = _dashboards(
                load_settings(database_url=url), Path(logs_dir), small
            )
        return _finish(report, args.out, started)
    with scratch_database() as url, tempfile.TemporaryDirectory() as logs_dir:
        logs = Path(logs_dir)
        with e2e.systems(url, base, logs, args.concurrency, with_events=True) as systems:
            store_system = next(s for s in systems if s.name == "store")
            memory: list[tuple[int, float]] = []
            processed = 0
            for system in systems:  # warm every worker (and prove it runs jobs)
                e2e.run_round(system, 50 if small else 100)
            processed += 50 if small else 100
            memory.append((processed, sections.rss_mb(store_system.worker)))
            rounds: dict[str, list[e2e.Round]] = {s.name: [] for s in systems}
            for number in range(args.rounds):
                # Task events on is a variant of the store, not a baseline: measured in
                # the first round only, to keep the whole run under ten minutes.
                rotation = [s for s in systems if number == 0 or s.name not in ONE_ROUND]
                order = rotation if number % 2 == 0 else list(reversed(rotation))
                for system in order:
                    result = e2e.run_round(system, per_round)
                    rounds[system.name].append(result)
                    print(f"  {system.name}: {result.per_second:.1f}/s", file=sys.stderr)
                processed += per_round
                memory.append((processed, sections.rss_mb(store_system.worker)))
            report["end_to_end"] = {
                "systems": {s.name: s.label for s in systems},
                "results": {name: e2e.summarise(rs) for name, rs in rounds.items()},
            }
            store = AssessmentStore(e2e.bench_settings(url, base, 10))
            try:
                backlog = 500 if small else 5_000
                store_system.reset()
                report["overtake"] = sections.overtake(store, backlog)
                processed += backlog + 1
                store_system.reset()
                waiters = 100 if small else 1_000
                report["in_flight"] = sections.in_flight_with_waiters(
                    store, store.settings, logs, waiters
                )
                processed += waiters
                store_system.reset()
                memory.append((processed, sections.rss_mb(store_system.worker)))
                remaining = max(0, args.soak - processed)
                soak = sections.soak(store, store_system.worker, remaining, 500 if small else 5_000)
                memory += [(processed + n, mb) for n, mb in soak["rss_mb"][1:]]
                report["soak"] = soak
            finally:
                store.close()
            settled = [mb for n, mb in memory if n >= memory[0][0] + per_round]
            report["worker_memory"] = {
                "assessments": memory[-1][0],
                "rss_mb": memory,
                "growth_mb_after_first_round": round(settled[-1] - settled[0], 1)
                if settled
                else 0.0,
            }
            plots.throughput(rounds, report["end_to_end"]["systems"], args.out)
        quiet = load_settings(database_url=url)
        sink = quiet.model_copy(
            update={
                "redis_url": redis_db_url(base.redis_url, PUBLISH_SINK_REDIS_DB),
                "broker_url": None,
            }
        )
        redis.Redis.from_url(sink.redis_url).flushdb()
        report["creation"] = sections.creation(
            sink, args.rounds, 1_000 if small else 10_000, 100 if small else 500
        )
        report["get_state_python"] = sections.python_reads(sink, 300 if small else 1_500)
        report["get_state_http"] = sections.http_reads_section(quiet, logs, 200 if small else 1_000)
        report["waiter_wake_up"] = sections.wake_up(quiet, 40 if small else 200)
        report["dashboards"] = _dashboards(quiet, logs, small)
    plots.latencies(report, args.out)
    for section in report.values():
        if isinstance(section, dict):
            section.pop("_samples", None)
    return _finish(report, args.out, started)


def _dashboards(settings: Settings, logs: Path, small: bool) -> dict[str, Any]:
    return dashboards.dashboards(
        settings,
        logs,
        streams=20 if small else 200,
        assessments=40 if small else 200,
        quick=small,
    )


def _finish(report: dict[str, Any], out: Path, started: float) -> int:
    """Judge the report, write report.json and report.md, print the table."""
    report["targets"] = check_targets(report) if "end_to_end" in report else []
    report["dashboard_targets"] = dashboard_targets(report)
    report["load_checks"] = load_checks(report)
    report["duration_seconds"] = round(time.monotonic() - started, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    (out / "report.md").write_text(table)
    print(table)
    # Speed targets are reported; growth beyond noise under load is a failure.
    return 0 if all(c["ok"] for c in report["load_checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
