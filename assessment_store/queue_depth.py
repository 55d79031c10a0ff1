"""How many messages wait in each broker queue (Redis): for /metrics and the dashboard."""

from __future__ import annotations

import redis

from assessment_store.queues import ALL_QUEUES

# kombu's Redis transport keeps each priority step of a queue in its own list.
REDIS_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
TIMEOUT_SECONDS = 2.0


def read_queue_depths(broker_url: str) -> dict[str, int]:
    """Messages waiting per queue, in ALL_QUEUES order; redis errors propagate."""
    client = redis.Redis.from_url(
        broker_url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS
    )
    try:
        with client.pipeline() as pipe:
            for queue in ALL_QUEUES:
                for suffix in REDIS_PRIORITY_SUFFIXES:
                    pipe.llen(queue + suffix)
            lengths = pipe.execute()
    finally:
        client.close()
    per_queue = len(REDIS_PRIORITY_SUFFIXES)
    return {
        queue: int(sum(lengths[index * per_queue : (index + 1) * per_queue]))
        for index, queue in enumerate(ALL_QUEUES)
    }
