"""How a Celery baseline's tasks say they are done: one pipelined round trip to Redis."""

from __future__ import annotations

import redis


def done_key(run: str) -> str:
    return f"bench:{run}:done"


def last_key(run: str) -> str:
    return f"bench:{run}:last"


def count_done(client: redis.Redis, run: str, finished_at: float) -> None:
    """Count one finished task of ``run`` and note when the latest one finished."""
    pipe = client.pipeline(transaction=False)
    pipe.incr(done_key(run))
    pipe.set(last_key(run), repr(finished_at))
    pipe.execute()


def progress(client: redis.Redis, run: str) -> tuple[int, float | None]:
    """How many tasks of ``run`` finished, and when the latest did (epoch seconds)."""
    done, last = client.mget(done_key(run), last_key(run))
    return int(done or 0), (float(last) if last else None)
