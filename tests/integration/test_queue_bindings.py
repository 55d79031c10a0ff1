"""What the broker really holds once assessments are published: each queue bound to
its own exchange under its own routing key, and each message in its band's queue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from assessment_store.config import Settings, load_settings
from assessment_store.dispatch import DispatchItem
from assessment_store.publishing import CeleryDispatcher
from assessment_store.queues import ASSESSMENT_QUEUES

BINDINGS_REDIS_DB = 13
# kombu's Redis transport keeps an exchange's bindings in this set, one member per
# binding: routing key, pattern and queue joined by its separator.
BINDING_KEY = "_kombu.binding.{}"
SEPARATOR = "\x06\x16"


@pytest.fixture
def broker_settings(settings: Settings) -> Iterator[Settings]:
    host = redis.Redis.from_url(settings.redis_url).connection_pool.connection_kwargs
    url = f"redis://{host.get('host', '127.0.0.1')}:{host.get('port', 6379)}/{BINDINGS_REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield load_settings(database_url=settings.database_url, redis_url=url)
    client.flushdb()
    client.close()


def test_each_band_is_bound_to_its_own_exchange_and_gets_its_own_messages(
    broker_settings: Settings,
) -> None:
    dispatcher = CeleryDispatcher(broker_settings)
    try:
        dispatcher.dispatch([DispatchItem(f"a{p}", p, 30.0) for p in (9, 5, 2)])
    finally:
        dispatcher.close()
    client = redis.Redis.from_url(broker_settings.redis_url, decode_responses=True)
    for queue in ASSESSMENT_QUEUES:
        assert client.smembers(BINDING_KEY.format(queue)) == {SEPARATOR.join([queue, "", queue])}, (
            queue
        )
        assert client.llen(queue) == 1, queue
