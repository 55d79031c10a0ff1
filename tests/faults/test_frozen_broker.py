"""A broker that accepts connections but answers nothing (a frozen or hung Redis): a
create must still return within about its publish timeout (the row is the promise)."""

from __future__ import annotations

import threading

import pytest

from ops.chaos.instances import PrivateRedis
from ops.chaos.workload import work_request
from tests.faults.conftest import MakeSystem

pytestmark = pytest.mark.slow


def test_a_create_against_a_frozen_broker_returns_within_its_publish_timeout(
    make_system: MakeSystem, private_redis: PrivateRedis
) -> None:
    # Given a producer that has published to the broker (it holds a connection)
    system = make_system()
    system.producer.create_assessment(work_request(0.01))
    bound = 3 * system.settings.broker_publish_timeout_seconds + 2
    # When the broker freezes (SIGSTOP: the port accepts, nothing answers) and it creates
    private_redis.freeze()
    created: list[str] = []
    creating = threading.Thread(
        target=lambda: created.append(system.producer.create_assessment(work_request(0.01)))
    )
    try:
        creating.start()
        creating.join(bound)
        # Then the create returns (its publish given up) within a few publish timeouts
        assert not creating.is_alive(), f"a create still waited on the broker after {bound:g}s"
        assert len(created) == 1
    finally:
        private_redis.thaw()  # answers again: a waiting read returns at once
        creating.join(60)
