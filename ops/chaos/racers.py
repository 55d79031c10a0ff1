"""Processes racing cancel, complete, fail and manual retry on the same assessments
through the Python API, against each other and against the workers.

Each racer reads a row, picks a change that its state allows (and, now and then, one
it does not), and makes it with the version it read. Refusals are the expected
outcome of losing a race (VersionConflictError, InvalidStateTransitionError); every
success is reported with the version it produced, so the checker can prove that each
success wrote exactly one audit row and nothing else was written in its name.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.synchronize
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from assessment_store import AssessmentState, AssessmentStore, load_settings
from assessment_store.config import Settings
from assessment_store.errors import (
    AssessmentStoreError,
    InvalidStateTransitionError,
    VersionConflictError,
)
from assessment_store.models import Assessment

LOST_RACE = (VersionConflictError, InvalidStateTransitionError)
HOT_WINDOW = 3


@dataclass
class RaceReport:
    """One racer's results: (assessment id, version produced) per successful change."""

    name: str
    successes: list[tuple[str, int, str]] = field(default_factory=list)  # id, version, op
    refusals: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # anything unexpected


def _change(store: AssessmentStore, name: str, current: Assessment, op: str) -> Assessment:
    aid, version = current.assessment_id, current.version
    if op == "cancel":
        return store.cancel_assessment(
            aid, f"cancelled by {name}", expected_version=version, changed_by=name
        )
    if op == "complete":
        return store.complete_assessment(
            aid, {"racer": name}, expected_version=version, changed_by=name
        )
    if op == "fail":
        return store.fail_assessment(
            aid, f"failed by {name}", expected_version=version, changed_by=name
        )
    if op == "retry":
        return store.retry_assessment(aid, expected_version=version, changed_by=name)
    if op == "claim":
        return store.start_processing(aid, name, expected_version=version)
    raise ValueError(op)


# What a racer tries in each state: mostly what the state allows (failing and retrying
# more often than ending, so a row stays contested for a while), sometimes not.
CHOICES: dict[AssessmentState, tuple[str, ...]] = {
    AssessmentState.PENDING: ("claim", "claim", "claim", "claim", "cancel", "retry"),
    AssessmentState.PROCESSING: ("fail", "fail", "fail", "complete", "cancel", "retry"),
    AssessmentState.FAILED: ("retry", "retry", "retry", "cancel"),
    AssessmentState.COMPLETED: ("cancel", "retry", "complete"),
    AssessmentState.CANCELLED: ("retry", "complete"),
}
AFTER_CLAIM = ("fail", "fail", "complete")


def race(
    store: AssessmentStore, name: str, ids: list[str], rng: random.Random, operations: int
) -> RaceReport:
    """``operations`` changes on ``ids``, each on one of a window of HOT_WINDOW ids that
    slides along ``ids`` as the race goes: racers started together move at about the
    same pace, so they fight over the same few rows at the same time."""
    report = RaceReport(name)
    hot = min(HOT_WINDOW, len(ids))
    for step in range(operations):
        low = step * (len(ids) - hot) // max(1, operations - 1)
        try:
            current = store.get_state(rng.choice(ids[low : low + hot]))
            op = rng.choice(CHOICES[current.state])
            changed = _change(store, name, current, op)
            report.successes.append((changed.assessment_id, changed.version, op))
            if op == "claim":  # finish what we claimed, unless someone beats us to it
                finish = rng.choice(AFTER_CLAIM)
                done = _change(store, name, changed, finish)
                report.successes.append((done.assessment_id, done.version, finish))
        except LOST_RACE as exc:
            report.refusals[type(exc).__name__] += 1
        except AssessmentStoreError as exc:
            report.failures.append(f"{type(exc).__name__}: {exc}")
    return report


def _racer_main(
    settings_json: str,
    name: str,
    ids: list[str],
    seed: int,
    operations: int,
    start: multiprocessing.synchronize.Barrier,
    out: str,
) -> None:
    """A racer process: ready its store, wait for the others, race, write the report."""
    store = AssessmentStore(load_settings(**json.loads(settings_json)), application_name=name)
    try:
        store.get_state(ids[0])  # connections made before the start, not during it
        start.wait(120)
        report = race(store, name, ids, random.Random(seed), operations)
    finally:
        store.close()
    Path(out).write_text(
        json.dumps(
            {
                "name": report.name,
                "successes": report.successes,
                "refusals": dict(report.refusals),
                "failures": report.failures,
            }
        )
    )


def run_racers(
    settings: Settings,
    ids: list[str],
    out_dir: Path,
    *,
    racers: int,
    operations: int,
    seed: int,
    prefix: str = "racer",
) -> list[RaceReport]:
    """Race ``racers`` processes (spawned: nothing inherited) over ``ids``, started
    together; their reports once all are done. Racers are named ``prefix-N`` (their
    audit rows carry the name; no ``@``, so no one takes them for a worker)."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(racers + 1)
    processes = []
    settings_json = settings.model_dump_json()
    for index in range(racers):
        name = f"{prefix}-{index + 1}"
        process = context.Process(
            target=_racer_main,
            args=(
                settings_json,
                name,
                ids,
                seed + index,
                operations,
                start,
                str(out_dir / f"{name}.json"),
            ),
            name=name,
        )
        process.start()
        processes.append((name, process))
    start.wait(120)
    reports = []
    for name, process in processes:
        process.join(300)
        if process.exitcode != 0:
            raise AssertionError(f"{name} exited with {process.exitcode}")
        raw: dict[str, Any] = json.loads((out_dir / f"{name}.json").read_text())
        reports.append(
            RaceReport(
                raw["name"],
                [(aid, int(version), op) for aid, version, op in raw["successes"]],
                Counter(raw["refusals"]),
                list(raw["failures"]),
            )
        )
    return reports


def unaccounted_writes(conn: Connection, reports: list[RaceReport]) -> list[str]:
    """Problems between what racers reported and what the audit table says: a success
    without exactly one audit row of its own, or an audit row in a racer's name that
    no success accounts for."""
    problems = []
    for report in reports:
        rows = conn.execute(
            text(
                "SELECT assessment_id, version_to FROM assessment_state_audit "
                "WHERE changed_by = :name"
            ),
            {"name": report.name},
        ).all()
        written = Counter((str(aid), int(version)) for aid, version in rows)
        claimed = Counter((aid, version) for aid, version, _ in report.successes)
        for key in sorted((written | claimed).keys()):
            if written[key] != 1 or claimed[key] != 1:
                problems.append(
                    f"{report.name} {key}: {claimed[key]} success(es), {written[key]} audit row(s)"
                )
    conn.rollback()
    return problems
