"""``AssessmentStore()`` is a producer's store: made from the environment alone, it
publishes each new assessment to its priority queue right after the commit."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
import redis

from assessment_store import AssessmentStore
from assessment_store.config import Settings, get_settings
from assessment_store.queues import HIGH_QUEUE, LOW_QUEUE, NORMAL_QUEUE, RUN_ASSESSMENT_TASK
from tests.factories import request

PUBLISHING_REDIS_DB = 11


@pytest.fixture
def broker(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[redis.Redis]:
    host = redis.Redis.from_url(settings.redis_url).connection_pool.connection_kwargs
    url = f"redis://{host.get('host', '127.0.0.1')}:{host.get('port', 6379)}/{PUBLISHING_REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    monkeypatch.setenv("ASSESSMENT_STORE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ASSESSMENT_STORE_REDIS_URL", url)
    monkeypatch.delenv("ASSESSMENT_STORE_BROKER_URL", raising=False)
    get_settings.cache_clear()
    yield client
    get_settings.cache_clear()
    client.flushdb()
    client.close()


def test_a_store_made_with_no_arguments_publishes_each_assessment_after_commit(
    broker: redis.Redis,
) -> None:
    with AssessmentStore() as store:
        high = store.create_assessment(request(priority=9))
        normal, low = store.batch_create_assessments([request(priority=5), request(priority=2)])
    for queue, assessment_id in ((HIGH_QUEUE, high), (NORMAL_QUEUE, normal), (LOW_QUEUE, low)):
        messages = broker.lrange(queue, 0, -1)
        assert len(messages) == 1, queue
        envelope = json.loads(messages[0])
        assert envelope["headers"]["task"] == RUN_ASSESSMENT_TASK
        args, _kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
        assert args == [assessment_id]
        hard, soft = envelope["headers"]["timelimit"]  # Celery: (hard, soft)
        assert hard > soft > 0


def test_a_store_asked_to_publish_nothing_publishes_nothing(
    broker: redis.Redis, settings: Settings
) -> None:
    from tests.factories import quiet_store

    with quiet_store(get_settings()) as store:
        store.create_assessment(request(priority=9))
    assert broker.llen(HIGH_QUEUE) == 0
