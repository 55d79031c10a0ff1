"""The chaos run's report: per fault kind, how many runs, how many assessments were
at risk (in flight when it hit), how many were lost or done twice, and how long
until progress resumed; written as report.json and report.md."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ops.chaos.faults import FaultRun
from ops.chaos.invariants import Findings
from ops.chaos.supervisor import Death

OUTSIDE = "(outside any fault)"


@dataclass
class KindRow:
    kind: str
    runs: int = 0
    at_risk: int = 0
    lost: int = 0
    duplicated: int = 0
    resume: list[float] = field(default_factory=list)
    recovered: list[float] = field(default_factory=list)
    problems: int = 0
    slowest_create: float | None = None
    worker_deaths: int = 0  # workers that exited on their own while (or after) it ran

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "runs": self.runs,
            "at_risk": self.at_risk,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "resume_seconds_median": _median(self.resume),
            "resume_seconds_max": max(self.resume, default=None),
            "recovered_seconds_median": _median(self.recovered),
            "recovered_seconds_max": max(self.recovered, default=None),
            "problems": self.problems,
            "slowest_create_seconds": self.slowest_create,
            "worker_deaths": self.worker_deaths,
        }


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def kind_rows(runs: list[FaultRun], final: Findings, deaths: list[Death]) -> list[KindRow]:
    """One row per fault kind that ran; lost and doubled assessments are charged to
    every fault that had them at risk, or to OUTSIDE when none did; a worker's own
    death to the fault injected last before it."""
    lost, doubled = set(final.unfinished), set(final.duplicated)
    rows: dict[str, KindRow] = {}
    for run in runs:
        row = rows.setdefault(run.kind, KindRow(run.kind))
        row.runs += 1
        row.at_risk += len(run.at_risk)
        row.lost += len(run.at_risk & lost)
        row.duplicated += len(run.at_risk & doubled)
        row.problems += len(run.problems)
        if run.resume_seconds is not None:
            row.resume.append(run.resume_seconds)
        if run.recovered_seconds is not None:
            row.recovered.append(run.recovered_seconds)
        slowest = run.notes.get("slowest_create_seconds")
        if isinstance(slowest, float):
            row.slowest_create = max(row.slowest_create or 0.0, slowest)
    covered = set().union(*(run.at_risk for run in runs)) if runs else set()
    outside = KindRow(OUTSIDE, lost=len(lost - covered), duplicated=len(doubled - covered))
    for death in (d for d in deaths if d.unplanned):
        before = [run for run in runs if run.injected_at <= death.at]
        (rows[before[-1].kind] if before else outside).worker_deaths += 1
    return [*sorted(rows.values(), key=lambda r: r.kind), outside]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def markdown(summary: dict[str, Any]) -> str:
    lines = [
        "# Chaos run",
        "",
        f"Seed {summary['seed']}, {summary['minutes']:g} minute(s) asked, "
        f"{summary['wall_seconds']:.0f} s run (faults {summary['fault_seconds']:.0f} s, "
        f"final settle {summary['settle_seconds']:.0f} s). "
        f"{summary['created']} assessments created by the steady producer "
        f"({summary['refused_batches']} batch(es) refused while PostgreSQL was away), "
        f"{summary['total']} in all: {summary['by_state']}. Slowest create "
        f"{_fmt(summary['slowest_create_seconds'])} s; the producer's process "
        f"{summary['producer_rss_mb']['start']:g} MB resident at the start, "
        f"{summary['producer_rss_mb']['end']:g} MB at the end.",
        "",
        "| fault | runs | assessments at risk | lost | duplicated | progress resumed after, s "
        "(median / max) | all at risk finished after, s (median / max) | slowest create, s "
        "| workers that died on their own | other problems |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["kinds"]:
        lines.append(
            f"| {row['kind']} | {row['runs']} | {row['at_risk']} | {row['lost']} | "
            f"{row['duplicated']} | {_fmt(row['resume_seconds_median'])} / "
            f"{_fmt(row['resume_seconds_max'])} | {_fmt(row['recovered_seconds_median'])} / "
            f"{_fmt(row['recovered_seconds_max'])} | {_fmt(row['slowest_create_seconds'])} | "
            f"{row['worker_deaths']} | {row['problems']} |"
        )
    lines += [
        "",
        "Resumed: seconds from the fault's end (its injection, for instantaneous faults) "
        "until three more assessments had finished. Finished: seconds from the injection "
        "until every assessment it put at risk was completed, cancelled or a dead letter. "
        "Slowest create: the steady producer's longest batch create (refusals included) "
        "from the injection until it had settled.",
        "",
        f"**Verdict: {'PASS' if summary['ok'] else 'FAIL'}** "
        f"({summary['lost']} lost, {summary['duplicated']} duplicated, "
        f"{len(summary['problems'])} invariant problem(s)).",
    ]
    if summary["worker_deaths"]:
        causes = sorted({d["cause"] for d in summary["worker_deaths"]})
        lines += [
            "",
            f"{len(summary['worker_deaths'])} worker exit(s) not caused by a fault's SIGKILL "
            "(the supervisor started each again, as a deployment's process manager would):",
            "",
            *(f"- {cause}" for cause in causes),
        ]
    if summary["problems"]:
        lines += ["", "## Problems", "", *(f"- {p}" for p in summary["problems"][:100])]
    return "\n".join(lines) + "\n"


def write(out_dir: Path, summary: dict[str, Any], runs: list[FaultRun]) -> None:
    detail = {
        **summary,
        "runs": [
            {
                "kind": run.kind,
                "started": run.started,
                "at_risk": len(run.at_risk),
                "resume_seconds": run.resume_seconds,
                "recovered_seconds": run.recovered_seconds,
                "notes": run.notes,
                "problems": run.problems,
            }
            for run in runs
        ],
    }
    (out_dir / "report.json").write_text(json.dumps(detail, indent=2, default=str) + "\n")
    (out_dir / "report.md").write_text(markdown(summary))
