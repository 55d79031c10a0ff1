"""The lease keeper: one thread renews every running attempt's lease."""

from __future__ import annotations

import threading

from assessment_store.lease import LeaseKeeper
from tests.waiting import wait_until


def test_one_thread_renews_every_held_lease_and_flags_a_lost_one() -> None:
    renewed: list[tuple[str, str]] = []
    lost_ids = {"b"}

    def renew(assessment_id: str, worker_id: str) -> bool:
        renewed.append((assessment_id, worker_id))
        return assessment_id not in lost_ids

    keeper = LeaseKeeper(renew, lease_seconds=0.3)  # renew every 0.1 s
    before = threading.active_count()
    try:
        with keeper.hold("a", "w:1") as a, keeper.hold("b", "w:1") as b:
            assert threading.active_count() == before + 1, "one keeper thread for all leases"
            wait_until(lambda: b.lost, timeout=5, message="the lost lease was never flagged")
            wait_until(
                lambda: renewed.count(("a", "w:1")) >= 3,
                timeout=5,
                message="the held lease was not renewed again and again",
            )
            assert not a.lost
            assert keeper.held_count == 1, "a lost lease is no longer renewed"
        assert keeper.held_count == 0
        count = len(renewed)
        with keeper.hold("c", "w:2"):
            wait_until(lambda: ("c", "w:2") in renewed, timeout=5, message="no renewal of c")
        assert threading.active_count() == before + 1, "the thread is reused"
        assert len(renewed) > count
    finally:
        keeper.close()
    wait_until(lambda: threading.active_count() == before, timeout=5, message="thread not stopped")


def test_a_failing_renewal_is_retried_not_fatal() -> None:
    calls: list[int] = []

    def renew(assessment_id: str, worker_id: str) -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("database blip")
        return True

    keeper = LeaseKeeper(renew, lease_seconds=0.3)
    try:
        with keeper.hold("a", "w") as lease:
            wait_until(lambda: len(calls) >= 3, timeout=5, message="renewal not retried")
            assert not lease.lost
    finally:
        keeper.close()
