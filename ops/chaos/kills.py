"""SIGKILL of a worker that provably holds running work.

"Provably": its row says the worker claimed the attempt, and the attempt's handler
cannot have finished yet (the row was claimed less than the handler's shortest
duration ago, with a margin). After the kill the rows still name the dead worker:
those attempts were in flight when it died, and only the rescue job can end them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy import text

from ops.chaos.polling import until
from ops.chaos.system import System

# The handler must have at least this long left when the kill is decided, so that
# the decision (a query) and the kill (a signal) both land before it could finish.
KILL_MARGIN_SECONDS = 0.2


@dataclass(frozen=True)
class Kill:
    worker: str
    in_flight: list[str]  # rows still processing by the dead worker right after the kill


def busy_workers(system: System) -> dict[str, int]:
    """Worker name -> attempts it is running that cannot finish within the margin."""
    with system.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT split_part(worker_id, '@', 1), count(*) FROM assessment_states
                WHERE state = 'processing' AND assessment_type = 'chaos'
                  AND started_at + make_interval(secs =>
                        split_part(split_part(server_name, ':', 2), '-', 1)::float)
                      > now() + make_interval(secs => :margin)
                GROUP BY 1
                """
            ),
            {"margin": KILL_MARGIN_SECONDS},
        ).all()
    return {str(name): int(count) for name, count in rows if name in system.workers}


def kill_a_busy_worker(system: System, rng: random.Random, *, timeout: float = 60) -> Kill:
    """Wait until some worker provably runs work, SIGKILL its whole process group, and
    report which attempts died with it. The worker stays down (restart it)."""
    busy: dict[str, int] = {}

    def someone_busy() -> bool:
        busy.clear()
        busy.update(busy_workers(system))
        return bool(busy)

    until(someone_busy, timeout=timeout, message="no worker was ever provably busy")
    victim = rng.choice(sorted(busy))
    system.workers[victim].kill()
    return Kill(victim, system.processing_of(victim))
