"""The chaos report's bookkeeping (no services): losses and doubles are charged to the
faults that had them at risk, a worker's own death to the fault before it."""

from __future__ import annotations

from ops.chaos.faults import FaultRun
from ops.chaos.invariants import Findings
from ops.chaos.report import OUTSIDE, kind_rows, markdown
from ops.chaos.run import parse_args
from ops.chaos.supervisor import Death, cause_of_death


def run(kind: str, at: float, at_risk: set[str], resume: float | None = 1.0) -> FaultRun:
    return FaultRun(kind, "t", at, at, at_risk, resume_seconds=resume, recovered_seconds=2.0)


def test_losses_doubles_and_deaths_are_charged_to_the_faults_that_risked_them() -> None:
    runs = [run("flushall", 10, {"a", "b"}), run("flushall", 20, {"c"}), run("racing", 30, {"b"})]
    final = Findings(unfinished=["b", "z"], duplicated={"c": "attempt 1 executed 2 times"})
    deaths = [
        Death(25, "w1", 1, "Unrecoverable error: AttributeError(...)"),
        Death(31, "w2", -9, "SIGKILL"),  # a fault's own kill: not a finding
        Death(5, "w3", 1, "exited with 1"),  # before any fault
    ]
    rows = {row.kind: row for row in kind_rows(runs, final, deaths)}
    assert (rows["flushall"].runs, rows["flushall"].at_risk) == (2, 3)
    assert (rows["flushall"].lost, rows["flushall"].duplicated) == (1, 1)
    assert (rows["racing"].lost, rows["racing"].duplicated) == (1, 0)
    assert (rows[OUTSIDE].lost, rows[OUTSIDE].duplicated) == (1, 0)
    assert (rows["flushall"].worker_deaths, rows["racing"].worker_deaths) == (1, 0)
    assert rows[OUTSIDE].worker_deaths == 1


def test_the_markdown_report_has_a_row_per_kind_and_a_verdict() -> None:
    rows = [r.as_dict() for r in kind_rows([run("flushall", 1, {"a"})], Findings(), [])]
    summary = {
        "seed": 1,
        "minutes": 1.0,
        "wall_seconds": 70.0,
        "fault_seconds": 60.0,
        "settle_seconds": 2.0,
        "created": 10,
        "refused_batches": 0,
        "total": 10,
        "by_state": {"completed": 10},
        "slowest_create_seconds": 0.5,
        "producer_rss_mb": {"start": 90.0, "end": 95.0},
        "worker_deaths": [],
        "lost": 0,
        "duplicated": 0,
        "kinds": rows,
        "problems": [],
        "ok": True,
    }
    text = markdown(summary)
    assert "| flushall | 1 | 1 | 0 | 0 | 1 / 1 | 2 / 2 | - | 0 | 0 |" in text
    assert "**Verdict: PASS**" in text


def test_a_death_names_its_cause_from_the_log() -> None:
    log = "[x: INFO] ready.\n[2026: CRITICAL/MainProcess] Unrecoverable error: KeyError('k')\n"
    assert cause_of_death(log, 1) == "Unrecoverable error: KeyError('k')"
    assert cause_of_death(log, -9) == "SIGKILL"
    assert cause_of_death("", 2) == "exited with 2"


def test_the_chaos_run_lasts_ten_minutes_unless_told() -> None:
    assert parse_args([]).minutes == 10.0
    args = parse_args(["--minutes", "2.5", "--seed", "7", "--out", "/tmp/x"])
    assert (args.minutes, args.seed, str(args.out)) == (2.5, 7, "/tmp/x")
