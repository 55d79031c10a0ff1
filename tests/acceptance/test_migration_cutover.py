"""The cut-over under load: a steady stream of creates through the facade while an
operator flips the percentage 0 -> 50 -> 100 -> 0 with ``assessment-store migration
set`` (another process). New work moves as the hash says within seconds of each flip;
nothing in flight on either side is lost; after the rollback to 0% everything the
store already held completes (a real worker runs it)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import Connection, select

from assessment_store import AssessmentState, AssessmentStore, AssessmentStoreMigration
from assessment_store.config import Settings
from assessment_store.db.tables import migration_overrides
from assessment_store.migration import EventEmitterBackend, Route, Side
from assessment_store.migration.routing import Reason
from tests.acceptance.processes import ROOT, CeleryProcess
from tests.chain import audit_chain_problems
from tests.factories import request
from tests.waiting import wait_until

STEPS = (0, 50, 100, 0)
# Creates at each step once the facade applies it; a create every CREATE_EVERY seconds.
CREATES_PER_STEP = 60  # about 2.4 s of the stream (a create every 40 ms)
CREATE_EVERY = 0.04
# Each assessment runs about this long: work is in flight at every flip.
WORK = request(assessment_type="sleepy", server_name="sleep:0.3")


@dataclass(frozen=True)
class Created:
    at: float
    wall: datetime
    assessment_id: str
    route: Route


def steps_of(created: list[Created]) -> list[list[Created]]:
    """The creates of each step, in order (consecutive steps differ in percentage)."""
    steps: list[list[Created]] = []
    for item in created:
        if not steps or steps[-1][-1].route.percentage != item.route.percentage:
            steps.append([])
        steps[-1].append(item)
    return steps


def created_at(stream: Stream, percentage: int, enough: int) -> bool:
    """Whether the stream has made ``enough`` creates routed at ``percentage``."""
    return sum(c.route.percentage == percentage for c in stream.created) >= enough


class Stream:
    """Creates through the facade from a thread of its own until stopped."""

    def __init__(self, facade: AssessmentStoreMigration) -> None:
        self.facade = facade
        self.created: list[Created] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(CREATE_EVERY):
            try:
                [(assessment_id, route)] = self.facade.route_and_create([WORK])
            except BaseException as exc:  # reported by the test
                self.errors.append(exc)
                return
            self.created.append(Created(time.monotonic(), datetime.now(UTC), assessment_id, route))

    def first_at(self, percentage: int, since: float) -> float | None:
        for item in self.created:
            if item.at >= since and item.route.percentage == percentage:
                return item.at
        return None


def override_written_at(conn: Connection) -> datetime:
    conn.rollback()  # a fresh snapshot
    column = migration_overrides.c.updated_at
    written: datetime = conn.execute(
        select(column).where(migration_overrides.c.setting == "percentage")
    ).scalar_one()
    return written


def operator_sets(env: dict[str, str], percentage: int) -> float:
    """``assessment-store migration set --percentage N`` in its own process; returns
    when its write had committed."""
    command = ["migration", "set", "--percentage", str(percentage), "--by", "acceptance-operator"]
    subprocess.run(
        [sys.executable, "-m", "assessment_store.cli", *command],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=30,
    )
    return time.monotonic()


def test_flipping_the_percentage_moves_new_work_and_loses_none(
    system_settings: Settings,
    system_env: dict[str, str],
    producer: AssessmentStore,
    start_worker: Callable[..., CeleryProcess],
    raw_conn: Connection,
) -> None:
    start_worker("w1", concurrency=4)
    legacy = EventEmitterBackend(system_settings, handlers=producer.handlers, max_workers=8)
    facade = AssessmentStoreMigration(producer, legacy)  # the default 2 s refresh
    stream = Stream(facade)
    pickup: dict[int, float] = {}
    in_store_at_rollback: list[str] = []
    try:
        operator_sets(system_env, STEPS[0])
        wait_until(
            lambda: facade.configuration().percentage == STEPS[0],
            timeout=5,
            message="the first override was not picked up",
        )
        stream.start()
        for index, percentage in enumerate(STEPS):
            if index:
                written = operator_sets(system_env, percentage)
                wait_until(
                    lambda p=percentage, w=written: stream.first_at(p, w) is not None,  # type: ignore[misc]
                    timeout=6,
                    message=f"no create used {percentage}% within 6 s of the write",
                )
                committed = override_written_at(raw_conn)
                first = next(
                    c
                    for c in stream.created
                    if c.wall >= committed and c.route.percentage == percentage
                )
                pickup[index] = (first.wall - committed).total_seconds()
                if index == len(STEPS) - 1:  # the rollback: what the store holds unfinished
                    in_store_at_rollback = [
                        c.assessment_id
                        for c in stream.created
                        if c.route.side is Side.STORE
                        and not producer.get_state(c.assessment_id).is_finished
                    ]
            # The stream keeps creating at this step until it holds enough of its work.
            wait_until(
                partial(created_at, stream, percentage, CREATES_PER_STEP),
                timeout=120,
                message=f"the stream made too few creates at {percentage}%",
            )
        stream.stop()
        assert stream.errors == []

        # Every decision followed the hash at the percentage in force when it was made.
        created = stream.created
        assert all(c.route.reason is Reason.HASH for c in created)
        assert all(
            (c.route.side is Side.STORE) == (c.route.bucket < c.route.percentage) for c in created
        )
        by_step: dict[int, list[Created]] = {}
        for c in created:
            by_step.setdefault(c.route.percentage, []).append(c)
        assert {c.route.side for c in by_step[0]} == {Side.LEGACY}
        assert {c.route.side for c in by_step[100]} == {Side.STORE}
        half = by_step[50]
        share = sum(c.route.side is Side.STORE for c in half) / len(half)
        assert len(half) >= 30 and 0.25 < share < 0.75, (len(half), share)
        assert all(0 <= seconds < 3.0 for seconds in pickup.values()), pickup
        assert in_store_at_rollback, "nothing of the store's was in flight at the rollback"

        # Nothing lost: every assessment, on either side, reaches completed.
        store_ids = [c.assessment_id for c in created if c.route.side is Side.STORE]
        legacy_ids = [c.assessment_id for c in created if c.route.side is Side.LEGACY]
        finals = {i: facade.wait_for_completion(i, timeout=45) for i in store_ids + legacy_ids}
        assert {a.state for a in finals.values()} == {AssessmentState.COMPLETED}
        assert all(finals[i].worker_id.startswith("w1@") for i in store_ids)  # type: ignore[union-attr]
        assert all(facade.side_of(i) is Side.LEGACY for i in legacy_ids)
        assert audit_chain_problems(raw_conn) == []

        status = facade.get_migration_status()
        assert (status.store.held, status.store.in_flight) == (len(store_ids), 0)
        assert (status.legacy.held, status.legacy.in_flight) == (len(legacy_ids), 0)
        assert status.percentage == 0 and not facade.is_migration_complete()
        operator_sets(system_env, 100)
        wait_until(
            facade.is_migration_complete,
            timeout=5,
            message=lambda: f"not complete at 100%: {facade.get_migration_status()}",
        )
        figures = ", ".join(
            f"{step[0].route.percentage}%: {sum(c.route.side is Side.STORE for c in step)} store"
            f" / {sum(c.route.side is Side.LEGACY for c in step)} legacy"
            for step in steps_of(created)
        )
        print(
            f"\ncut-over: {len(created)} created (store {len(store_ids)}, legacy "
            f"{len(legacy_ids)}); by step {figures}; store unfinished at the rollback "
            f"{len(in_store_at_rollback)}; all {len(finals)} completed; each flip in force "
            f"{', '.join(f'{s:.2f}s' for s in pickup.values())} after its write"
        )
    finally:
        stream.stop()
        facade.close()
        legacy.close()
