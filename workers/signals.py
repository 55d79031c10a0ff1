"""Per-process set-up: every forked child builds its own database engines."""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init, worker_process_shutdown

from workers import runtime


@worker_process_init.connect
def _fresh_store_after_fork(**_: Any) -> None:
    # Connections inherited from the parent must never be used by the child.
    runtime.reset(close=False)


@worker_process_shutdown.connect
def _close_store(**_: Any) -> None:
    runtime.reset(close=True)
