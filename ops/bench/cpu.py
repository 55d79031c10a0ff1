"""Where a round's CPU went: this process, the system's worker tree, PostgreSQL, Redis."""

from __future__ import annotations

import os

import psutil


def _seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    return float(times.user + times.system)


def snapshot(worker_pid: int | None) -> dict[str, float]:
    """CPU seconds so far by part (prefork children that exited are not counted,
    which is why benchmark workers never recycle their children)."""
    parts: dict[str, float] = {"postgresql": 0.0, "redis": 0.0}
    me = psutil.Process(os.getpid())
    parts["benchmark"] = _seconds(me)
    if worker_pid is not None:
        try:
            root = psutil.Process(worker_pid)
            parts["worker_main"] = _seconds(root)
            parts["worker_children"] = sum(_seconds(c) for c in root.children(recursive=True))
        except psutil.NoSuchProcess:
            pass
    for process in psutil.process_iter(["name"]):
        name = process.info["name"] or ""
        if name.startswith("postgres"):
            parts["postgresql"] += _seconds(process)
        elif name.startswith("redis-server"):
            parts["redis"] += _seconds(process)
    return parts


def per_job_ms(before: dict[str, float], after: dict[str, float], jobs: int) -> dict[str, float]:
    """Milliseconds of CPU per job, by part, and their total."""
    spent = {part: max(0.0, after[part] - before.get(part, 0.0)) * 1000 / jobs for part in after}
    spent["total"] = sum(spent.values())
    return {part: round(ms, 3) for part, ms in spent.items()}
