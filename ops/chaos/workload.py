"""What the faults run against: requests for the recording handler, and a steady
producer that keeps creating them whatever is broken at the moment."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter

from assessment_store import AssessmentRequest, AssessmentStore
from assessment_store.errors import AssessmentStoreError
from ops.chaos.handlers import HANDLER_TYPE, WorkSpec

logger = logging.getLogger("ops.chaos.workload")


def work_request(
    min_seconds: float,
    max_seconds: float | None = None,
    *,
    fail_attempts: int = 0,
    timeout: float | None = None,
    priority: int = 5,
) -> AssessmentRequest:
    """A request for the recording handler (see ops.chaos.handlers.WorkSpec)."""
    spec = WorkSpec(min_seconds, min_seconds if max_seconds is None else max_seconds, fail_attempts)
    return AssessmentRequest(
        assessment_type=HANDLER_TYPE,
        server_name=spec.server_name(),
        timeout=timeout,
        priority=priority,
    )


def mixed_requests(
    rng: random.Random,
    count: int,
    *,
    min_seconds: float = 0.05,
    max_seconds: float = 0.4,
    failing_share: float = 0.1,
) -> list[AssessmentRequest]:
    """``count`` requests of random priority, a share of them failing their first
    attempt or two (so retries run through every fault too)."""
    return [
        work_request(
            min_seconds,
            max_seconds,
            fail_attempts=rng.choice((1, 2)) if rng.random() < failing_share else 0,
            priority=rng.randint(1, 10),
        )
        for _ in range(count)
    ]


class SteadyProducer:
    """A thread that creates a small batch every ``interval`` seconds until stopped.

    A refused batch (PostgreSQL down) is counted, not retried: it was never accepted,
    so it cannot be lost. Accepted ids are kept in creation order."""

    def __init__(
        self,
        store: AssessmentStore,
        rng: random.Random,
        *,
        interval: float = 0.25,
        batch: tuple[int, int] = (1, 5),
    ) -> None:
        self.store = store
        self.rng = rng
        self.interval = interval
        self.batch = batch
        self.created: list[str] = []
        self.refusals: Counter[str] = Counter()
        self.timings: list[tuple[float, float]] = []  # (started, seconds) per batch
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steady-producer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def created_count(self) -> int:
        with self._lock:
            return len(self.created)

    def slowest(self, since: float, until: float) -> float | None:
        """The longest batch create (refused ones too) that started in the window."""
        with self._lock:
            spans = [seconds for started, seconds in self.timings if since <= started <= until]
        return round(max(spans), 2) if spans else None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            requests = mixed_requests(self.rng, self.rng.randint(*self.batch))
            started = time.monotonic()
            try:
                ids = self.store.batch_create_assessments(requests, created_by="chaos-producer")
            except AssessmentStoreError as exc:
                self.refusals[type(exc).__name__] += 1
                logger.info("creation_refused: %s", exc)
                ids = []
            with self._lock:
                self.timings.append((started, time.monotonic() - started))
                self.created.extend(ids)
