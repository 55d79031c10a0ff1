"""The chaos run's faults: each injects one fault into a running system (while the
steady producer keeps creating) and says which assessments it put at risk.

Every fault is built from the same pieces as the fault suite (ops.chaos.kills,
racers, waiters, instances, proxy). A fault that holds for a while (the broker down,
a second beat) holds for a random time drawn from the run's seed: the hold is the
fault, never a wait for an outcome (outcomes are waited for by condition).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assessment_store import AssessmentStore
from assessment_store.dispatch import NullDispatcher, dispatch_item
from assessment_store.publishing import CeleryDispatcher
from ops.chaos.instances import PrivatePostgres, PrivateRedis
from ops.chaos.kills import kill_a_busy_worker
from ops.chaos.limits import time_limit_problems
from ops.chaos.polling import until
from ops.chaos.proxy import TcpProxy
from ops.chaos.racers import run_racers, unaccounted_writes
from ops.chaos.system import System
from ops.chaos.waiters import LongPolls, wait_once
from ops.chaos.workload import SteadyProducer, work_request

WAIT_SECONDS = 60.0


@dataclass
class Lab:
    """Everything a fault may break or use."""

    system: System
    postgres: PrivatePostgres
    redis: PrivateRedis
    proxy: TcpProxy  # the steady producer's only way to the broker
    producer: SteadyProducer
    rng: random.Random
    work_dir: Path
    token: str
    runs: int = 0


@dataclass
class FaultRun:
    """One injected fault, what it put at risk, and how the system came back."""

    kind: str
    started: str  # wall clock, for the report
    injected_at: float  # monotonic
    healed_at: float  # when the fault was removed (its injection, if instantaneous)
    at_risk: set[str]
    notes: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    resume_seconds: float | None = None  # from heal until completions resumed
    recovered_seconds: float | None = None  # from injection until every at-risk finished
    # A fault's own checks, run once its at-risk assessments have finished.
    verify: Callable[[], list[str]] | None = None


def _begin() -> tuple[str, float]:
    return datetime.now(UTC).isoformat(timespec="seconds"), time.monotonic()


def _created_since(lab: Lab, count_before: int) -> set[str]:
    return set(lab.producer.created[count_before:])


def _burst(lab: Lab, count: int = 100) -> set[str]:
    """Queue a burst of short assessments, so the fault finds plenty in flight (the
    steady producer alone keeps only a handful queued)."""
    requests = [work_request(0.05, 0.2, priority=lab.rng.randint(1, 10)) for _ in range(count)]
    return set(lab.system.producer.batch_create_assessments(requests))


def worker_kill(lab: Lab) -> FaultRun:
    """SIGKILL a worker while it provably runs attempts (long ones are queued first as
    bait, at top priority); the supervisor starts it again, as a deployment would."""
    lab.system.producer.batch_create_assessments(
        [work_request(1.0, 1.5, priority=10) for _ in range(6)]
    )
    kill = kill_a_busy_worker(lab.system, lab.rng)
    started, injected = _begin()
    return FaultRun(
        "worker_kill", started, injected, injected, set(kill.in_flight), {"worker": kill.worker}
    )


def _hold(lab: Lab, low: float, high: float) -> float:
    seconds = lab.rng.uniform(low, high)
    time.sleep(seconds)
    return round(seconds, 2)


def redis_restart(lab: Lab) -> FaultRun:
    """Stop Redis with a burst queued (producers keep creating), then start it
    again, empty."""
    _burst(lab)
    at_risk = lab.system.unfinished_ids()
    created = len(lab.producer.created)
    started, injected = _begin()
    lab.redis.stop()
    held = _hold(lab, 2, 6)
    lab.redis.start()
    return FaultRun(
        "redis_restart",
        started,
        injected,
        time.monotonic(),
        at_risk | _created_since(lab, created),
        {"down_seconds": held},
    )


def flushall(lab: Lab) -> FaultRun:
    """FLUSHALL with a burst queued: every queued and unacked message, every binding,
    gone."""
    _burst(lab)
    at_risk = lab.system.unfinished_ids()
    started, injected = _begin()
    with lab.redis.client() as client:
        client.flushall()
    return FaultRun("flushall", started, injected, injected, at_risk)


def broker_unreachable(lab: Lab) -> FaultRun:
    """The broker unreachable for the producer only (its proxy cut) for a while."""
    created = len(lab.producer.created)
    started, injected = _begin()
    lab.proxy.cut()
    held = _hold(lab, 3, 8)
    lab.proxy.restore()
    return FaultRun(
        "broker_unreachable",
        started,
        injected,
        time.monotonic(),
        _created_since(lab, created),
        {"cut_seconds": held},
    )


def broker_frozen(lab: Lab) -> FaultRun:
    """Redis frozen (SIGSTOP) for a while, a burst queued: it accepts connections and
    answers nothing."""
    _burst(lab)
    at_risk = lab.system.unfinished_ids()
    created = len(lab.producer.created)
    started, injected = _begin()
    lab.redis.freeze()
    held = _hold(lab, 3, 6)
    lab.redis.thaw()
    return FaultRun(
        "broker_frozen",
        started,
        injected,
        time.monotonic(),
        at_risk | _created_since(lab, created),
        {"frozen_seconds": held},
    )


def postgres_restart(lab: Lab) -> FaultRun:
    """PostgreSQL restarted (fast), or stopped for a few seconds, while the API holds
    long-polls on unfinished assessments; each waiter must answer cleanly, and a
    retried wait must then succeed."""
    at_risk = lab.system.unfinished_ids()
    watched = lab.system.producer.batch_create_assessments(
        [work_request(0.2, 0.4, priority=1) for _ in range(20)]
    )
    assert lab.system.api_url is not None
    polls = LongPolls(lab.system.api_url, lab.token, watched, wait_seconds=WAIT_SECONDS).start()
    down = lab.rng.choice((0.0, 0.0, 2.0, 4.0))
    started, injected = _begin()
    if down:
        lab.postgres.stop("fast")
        time.sleep(down)
        lab.postgres.start()
    else:
        lab.postgres.restart("fast")
    healed = time.monotonic()
    outcomes = polls.join(timeout=WAIT_SECONDS + 60)
    run = FaultRun(
        "postgres_restart",
        started,
        injected,
        healed,
        at_risk | set(watched),
        {"down_seconds": down},
    )
    answers = Counter(f"{outcome.status} {outcome.detail}" for outcome in outcomes)
    for outcome in outcomes:
        if not outcome.clean:
            run.problems.append(
                f"waiter {outcome.assessment_id}: {outcome.status} {outcome.detail}"
            )
        elif outcome.status != 200:
            retried = wait_once(lab.system.api_url, lab.token, outcome.assessment_id, WAIT_SECONDS)
            if retried.status != 200:
                run.problems.append(f"retried wait for {outcome.assessment_id}: {retried}")
    run.notes["waiters"] = dict(answers)
    return run


def racing(lab: Lab) -> FaultRun:
    """Three processes racing cancel, complete, fail, claim and retry on 30 fresh
    assessments (and the workers running them)."""
    ids = lab.system.producer.batch_create_assessments([work_request(0.5, 1.0) for _ in range(30)])
    started, injected = _begin()
    reports = run_racers(
        lab.system.settings,
        ids,
        lab.work_dir,
        racers=3,
        operations=80,
        seed=lab.rng.randrange(2**31),
        prefix=f"racer{lab.runs}",
    )
    run = FaultRun("racing", started, injected, time.monotonic(), set(ids))
    run.notes["successes"] = sum(len(r.successes) for r in reports)
    run.notes["refusals"] = sum(sum(r.refusals.values()) for r in reports)
    run.problems += [f for r in reports for f in r.failures]

    def every_success_wrote_once() -> list[str]:
        with lab.system.connect() as conn:
            return unaccounted_writes(conn, reports)

    run.verify = every_success_wrote_once
    return run


def duplicate_delivery(lab: Lab) -> FaultRun:
    """50 assessments stored without being published, then each one's message
    published four times over, shuffled."""
    requests = [work_request(0.05, 0.3) for _ in range(50)]
    with AssessmentStore(lab.system.settings, dispatcher=NullDispatcher()) as quiet:
        ids = quiet.batch_create_assessments(requests)
    items = [
        dispatch_item(aid, request.priority, request, lab.system.settings)
        for aid, request in zip(ids, requests, strict=True)
    ] * 4
    lab.rng.shuffle(items)
    started, injected = _begin()
    dispatcher = CeleryDispatcher(lab.system.settings)
    try:
        dispatcher.dispatch(items)
    finally:
        dispatcher.close()
    return FaultRun("duplicate_delivery", started, injected, injected, set(ids))


def two_beats(lab: Lab) -> FaultRun:
    """A second beat for a while: every maintenance job scheduled twice over, with
    retries, rescues and re-dispatches to do (failing attempts, a burst)."""
    lab.system.producer.batch_create_assessments(
        [work_request(0.1, 0.3, fail_attempts=lab.rng.randint(1, 3)) for _ in range(20)]
    )
    _burst(lab)
    at_risk = lab.system.unfinished_ids()
    created = len(lab.producer.created)
    started, injected = _begin()
    lab.system.start_beat("beat-2")
    held = _hold(lab, 8, 15)
    lab.system.stop_beat("beat-2")
    return FaultRun(
        "two_beats",
        started,
        injected,
        time.monotonic(),
        at_risk | _created_since(lab, created),
        {"seconds": held},
    )


def time_limits(lab: Lab) -> FaultRun:
    """20 assessments with a 1 s limit and attempts of 0.4-1.6 s."""
    started, injected = _begin()
    ids = lab.system.producer.batch_create_assessments(
        [work_request(0.4, 1.6, timeout=1) for _ in range(20)]
    )
    run = FaultRun("time_limits", started, injected, injected, set(ids))

    def the_limit_ended_them() -> list[str]:
        with lab.system.connect() as conn:
            return time_limit_problems(conn, ids, timeout=1)

    run.verify = the_limit_ended_them
    return run


FAULTS: dict[str, Callable[[Lab], FaultRun]] = {
    "worker_kill": worker_kill,
    "redis_restart": redis_restart,
    "flushall": flushall,
    "broker_unreachable": broker_unreachable,
    "broker_frozen": broker_frozen,
    "postgres_restart": postgres_restart,
    "racing": racing,
    "duplicate_delivery": duplicate_delivery,
    "two_beats": two_beats,
    "time_limits": time_limits,
}


def wait_for_resumption(lab: Lab, run: FaultRun, *, step: int = 3, timeout: float = 120) -> None:
    """Record how long after the heal the finished count grew by ``step`` again."""
    baseline: list[int] = []

    def resumed() -> bool:
        now = lab.system.try_finished()
        if now is None:
            return False
        if not baseline:
            baseline.append(now)
        return now >= baseline[0] + step

    until(resumed, timeout=timeout, poll=0.1, message=f"{run.kind}: progress never resumed")
    run.resume_seconds = round(time.monotonic() - run.healed_at, 2)
