"""The chaos run: minutes of random faults against a real system while a steady
producer creates assessments, then every invariant checked with SQL.

    python -m ops.chaos.run --minutes 10 --seed 7 --out .ops-data/chaos

Private PostgreSQL and Redis (free ports, temporary directories), three workers, a
beat and the API; faults drawn from a shuffled deck of every kind (so each kind runs
about equally often), one at a time: inject, wait until progress resumes and until
everything it put at risk has finished, check the invariants mid-run, pause, next.
At the end the producer stops, the system settles, and the final check decides.
Exit status 1 when anything was lost or done twice or an invariant broke.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import DBAPIError

from assessment_store.db.migrate import ensure_database, upgrade
from ops.chaos import report
from ops.chaos.faults import FAULTS, FaultRun, Lab, wait_for_resumption
from ops.chaos.handlers import install_executions_table
from ops.chaos.instances import PrivatePostgres, PrivateRedis
from ops.chaos.polling import ConditionTimeoutError, until
from ops.chaos.proxy import TcpProxy
from ops.chaos.supervisor import Supervisor
from ops.chaos.system import API_SECRET, System, fault_settings
from ops.chaos.waiters import admin_token
from ops.chaos.workload import SteadyProducer

logger = logging.getLogger("ops.chaos")
ROOT = Path(__file__).resolve().parents[2]
WORKERS = ("w1", "w2", "w3")
SETTLE_AFTER_FAULT_SECONDS = 180.0
FINAL_SETTLE_SECONDS = 300.0


def resident_mb() -> float:
    """This process's resident memory (the steady producer lives here)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ops.chaos.run", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to inject faults")
    parser.add_argument("--seed", type=int, default=None, help="the run's seed (random if unset)")
    parser.add_argument("--out", type=Path, default=None, help="where report.json/.md go")
    return parser.parse_args(argv)


def heal_everything(lab: Lab) -> None:
    """Undo whatever a fault that failed half-way may have left broken (the
    supervisor takes care of the workers)."""
    if lab.redis.running:
        lab.redis.thaw()
    else:
        lab.redis.start()
    if not lab.proxy.forwarding:
        lab.proxy.restore()
    if not lab.postgres.running:
        lab.postgres.start()
    if "beat-2" in lab.system.beats:
        lab.system.stop_beat("beat-2")


def inject(lab: Lab, kind: str) -> FaultRun:
    lab.runs += 1
    logger.info("fault %d: %s", lab.runs, kind)
    try:
        return FAULTS[kind](lab)
    except Exception as exc:  # a fault that could not be injected is a finding too
        logger.exception("fault %s could not be injected", kind)
        heal_everything(lab)
        now = time.monotonic()
        return FaultRun(kind, datetime.now(UTC).isoformat(), now, now, set(), problems=[repr(exc)])


def unfinished_of(lab: Lab, ids: set[str]) -> int | None:
    try:
        return lab.system.unfinished(sorted(ids))
    except DBAPIError:  # the database may still be on its way back
        return None


def settle(lab: Lab, run: FaultRun, seen: set[str]) -> None:
    """Measure the recovery from ``run`` and check the invariants mid-run (problems
    not in ``seen`` are this fault's; ``seen`` grows by them)."""
    try:
        wait_for_resumption(lab, run)
    except ConditionTimeoutError as exc:
        run.problems.append(str(exc))
    try:
        until(
            lambda: unfinished_of(lab, run.at_risk) == 0,
            timeout=SETTLE_AFTER_FAULT_SECONDS,
            poll=0.2,
            message=f"{run.kind}: at-risk assessments unfinished after "
            f"{SETTLE_AFTER_FAULT_SECONDS:g}s",
        )
        run.recovered_seconds = round(time.monotonic() - run.injected_at, 2)
    except ConditionTimeoutError as exc:
        run.problems.append(str(exc))
    run.notes["slowest_create_seconds"] = lab.producer.slowest(run.injected_at, time.monotonic())
    if run.verify is not None:
        run.problems += run.verify()
    found = lab.system.check(mid_run=True).problems(settled=False)
    run.problems += [f"mid-run: {p}" for p in found if p not in seen]
    seen.update(found)
    logger.info(
        "  %s: %d at risk, resumed after %ss, all finished after %ss, %d problem(s)",
        run.kind,
        len(run.at_risk),
        run.resume_seconds,
        run.recovered_seconds,
        len(run.problems),
    )


def run_chaos(minutes: float, seed: int, out: Path) -> dict[str, Any]:
    rng = random.Random(seed)
    started = time.monotonic()
    rss_at_start = resident_mb()
    runs: list[FaultRun] = []
    with ExitStack() as stack:
        postgres = stack.enter_context(PrivatePostgres())
        redis = stack.enter_context(PrivateRedis())
        url = postgres.url("chaos")
        ensure_database(url)
        upgrade(url)
        install_executions_table(url)
        proxy = TcpProxy(redis.port)
        proxy.start()
        stack.callback(proxy.cut)
        (out / "logs").mkdir(parents=True, exist_ok=True)
        system = stack.enter_context(
            System(
                fault_settings(url, redis.url(0)), out / "logs", producer_broker_url=proxy.url(0)
            )
        )
        system.start_workers(*WORKERS, concurrency=2)
        system.start_beat()
        system.start_api()
        supervisor = stack.enter_context(Supervisor(system))
        producer = SteadyProducer(system.producer, random.Random(rng.randrange(2**31)))
        producer.start()
        stack.callback(producer.stop)
        lab = Lab(system, postgres, redis, proxy, producer, rng, out, admin_token(API_SECRET))
        faults_from = time.monotonic()
        deadline = faults_from + minutes * 60
        deck: list[str] = []
        seen: set[str] = set()
        while time.monotonic() < deadline:
            if not deck:
                deck = list(FAULTS)
                rng.shuffle(deck)
            run = inject(lab, deck.pop())
            runs.append(run)
            settle(lab, run, seen)
            time.sleep(rng.uniform(2, 6))  # pacing between faults, not a wait for anything
        fault_seconds = time.monotonic() - faults_from
        producer.stop()
        settling = time.monotonic()
        try:
            system.wait_settled(FINAL_SETTLE_SECONDS)
        except ConditionTimeoutError as exc:
            logger.error("%s", exc)
        settle_seconds = time.monotonic() - settling
        final = system.check()
    rows = [row.as_dict() for row in report.kind_rows(runs, final, supervisor.deaths)]
    problems = final.problems() + [f"{run.kind}: {p}" for run in runs for p in run.problems]
    summary: dict[str, Any] = {
        "seed": seed,
        "minutes": minutes,
        "wall_seconds": round(time.monotonic() - started, 1),
        "fault_seconds": round(fault_seconds, 1),
        "settle_seconds": round(settle_seconds, 1),
        "created": len(producer.created),
        "slowest_create_seconds": producer.slowest(0, time.monotonic()),
        "producer_rss_mb": {"start": rss_at_start, "end": resident_mb()},
        "refused_batches": sum(producer.refusals.values()),
        "total": final.total,
        "by_state": final.by_state,
        "worker_deaths": [
            {"worker": d.worker, "cause": d.cause, "returncode": d.returncode}
            for d in supervisor.deaths
            if d.unplanned
        ],
        "lost": len(final.unfinished),
        "duplicated": len(final.duplicated),
        "kinds": rows,
        "problems": problems,
        "ok": not problems,
    }
    report.write(out, summary, runs)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    out: Path = args.out or ROOT / ".ops-data" / "chaos" / datetime.now(UTC).strftime(
        "%Y%m%dT%H%M%S"
    )
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.FileHandler(out / "chaos.log")],
    )
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    # The run's own progress and the supervisor's restarts; everything else (the
    # producer's refusals, the store's outage lines) goes to chaos.log only.
    console.addFilter(lambda record: record.name in ("ops.chaos", "ops.chaos.supervisor"))
    logger.addHandler(console)
    logger.info("chaos: %g minute(s), seed %d, output in %s", args.minutes, seed, out)
    summary = run_chaos(args.minutes, seed, out)
    print(report.markdown(summary))
    print(f"report: {out / 'report.md'} and {out / 'report.json'}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
