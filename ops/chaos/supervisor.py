"""A process manager for the workers: whenever one exits, start it again, as
Kubernetes or compose's restart policy would in a deployment, and remember why it
died (killed by a fault, or an exit of its own, which is a finding).

Known cause of the latter (celery 5.7.0 / kombu 5.7.0): a worker that is polling for
work while it holds an unacknowledged message dies with "Unrecoverable error:
AttributeError(\"'NoneType' object has no attribute 'hostname'\")" when Redis drops
its connection; see tests/faults/test_broker_outages.py for the reproduction.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass

from ops.chaos.system import System

logger = logging.getLogger("ops.chaos.supervisor")
UNRECOVERABLE = "Unrecoverable error"


@dataclass(frozen=True)
class Death:
    at: float  # monotonic
    worker: str
    returncode: int | None
    cause: str

    @property
    def unplanned(self) -> bool:
        """Not one of ours: the worker was not SIGKILLed by a fault."""
        return self.returncode != -signal.SIGKILL


def cause_of_death(log: str, returncode: int | None) -> str:
    if returncode == -signal.SIGKILL:
        return "SIGKILL"
    lines = [line for line in log.splitlines() if UNRECOVERABLE in line]
    return lines[-1].split("] ", 1)[-1] if lines else f"exited with {returncode}"


class Supervisor:
    """Restarts the system's exited workers every ``poll`` seconds, in a thread."""

    def __init__(self, system: System, poll: float = 0.5) -> None:
        self.system = system
        self.poll = poll
        self.deaths: list[Death] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            for name, process in list(self.system.workers.items()):
                if process.process is None or process.running:
                    continue
                returncode = process.process.returncode
                death = Death(
                    time.monotonic(),
                    name,
                    returncode,
                    cause_of_death(process.log()[-20000:], returncode),
                )
                self.deaths.append(death)
                logger.info("supervisor: %s died (%s); starting it again", name, death.cause)
                try:
                    self.system.restart_worker(name)
                except Exception:  # keep supervising the others; the next poll retries
                    logger.exception("supervisor: %s did not start again", name)

    def __enter__(self) -> Supervisor:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
