"""AssessmentStoreMigration with the in-process legacy backend and a real store:
routing by hash, reads, waits and subscriptions on both sides with the seed's event
names, status counts and completion, fallback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from assessment_store import (
    AssessmentConflictError,
    AssessmentEventMessage,
    AssessmentNotFoundError,
    AssessmentStore,
    AssessmentStoreMigration,
    AssessmentTimeoutError,
    EventEmitterBackend,
    InvalidInputError,
    LegacyBackend,
    StoreUnavailableError,
)
from assessment_store.config import Settings, load_settings
from assessment_store.handlers.context import HandlerContext
from assessment_store.migration import SEED_EVENT_TYPES, Side, routes_to_store
from tests.factories import quiet_store, request
from tests.waiting import wait_until

# A legacy handler blocked until the test lets it go.
RELEASE = threading.Event()


def stepping(ctx: HandlerContext) -> dict[str, Any]:
    ctx.report_progress(50, "half")
    return {"ok": True}


def failing(ctx: HandlerContext) -> dict[str, Any]:
    raise RuntimeError("legacy boom")


def blocked(ctx: HandlerContext) -> dict[str, Any]:
    ctx.report_progress(10)
    RELEASE.wait(30)
    ctx.report_progress(90)
    return {"released": True}


@pytest.fixture
def facade(store: AssessmentStore) -> Iterator[AssessmentStoreMigration]:
    for name, handler in (("stepping", stepping), ("failing", failing), ("blocked", blocked)):
        store.handlers.register(name, handler)
    RELEASE.clear()
    migration = AssessmentStoreMigration(store, refresh_seconds=0.1)
    yield migration
    RELEASE.set()
    migration.close()
    migration.legacy.close()


def local(**fields: Any) -> Any:
    return request(assessment_type="stepping", server_name=None, **fields)


def test_new_work_goes_where_the_hash_says(facade: AssessmentStoreMigration) -> None:
    assert isinstance(facade.legacy, LegacyBackend)
    facade.set_overrides({"percentage": 50})
    ids = [facade.create_assessment(local()) for _ in range(60)]
    for assessment_id in ids:
        expected = Side.STORE if routes_to_store(assessment_id, 50) else Side.LEGACY
        assert facade.side_of(assessment_id) is expected
        assert facade.legacy.holds(assessment_id) is (expected is Side.LEGACY)
    on_store = sum(facade.side_of(i) is Side.STORE for i in ids)
    assert 10 < on_store < 50  # about half
    client_id = "client-chosen-7"
    assert facade.create_assessment(local(id=client_id)) == client_id
    assert facade.side_of(client_id) is facade.route_for(client_id).side


def test_zero_and_a_hundred_percent_and_a_disabled_store(facade: AssessmentStoreMigration) -> None:
    facade.set_overrides({"percentage": 0})
    assert all(facade.side_of(facade.create_assessment(local())) is Side.LEGACY for _ in range(10))
    facade.set_overrides({"percentage": 100})
    assert all(facade.side_of(facade.create_assessment(local())) is Side.STORE for _ in range(10))
    facade.enable_legacy_mode(True)
    assert facade.configuration().store_share == 0
    assert all(facade.side_of(facade.create_assessment(local())) is Side.LEGACY for _ in range(10))
    facade.enable_legacy_mode(False)
    assert facade.side_of(facade.create_assessment(local())) is Side.STORE


def test_an_assessment_stays_on_its_side_for_life(facade: AssessmentStoreMigration) -> None:
    facade.set_overrides({"percentage": 100})
    first = facade.create_assessment(local(id="stays-put"))
    facade.set_overrides({"percentage": 0})
    assert facade.create_assessment(local(id="stays-put")) == first  # idempotent repeat
    assert facade.side_of(first) is Side.STORE and not facade.legacy.holds(first)
    with pytest.raises(AssessmentConflictError):
        facade.create_assessment(local(id="stays-put", priority=9))
    legacy_id = facade.create_assessment(local(id="legacy-one"))
    facade.set_overrides({"percentage": 100})
    assert facade.create_assessment(local(id="legacy-one")) == legacy_id
    assert facade.side_of(legacy_id) is Side.LEGACY
    with pytest.raises(AssessmentConflictError):
        facade.create_assessment(local(id="legacy-one", priority=9))


def test_reads_waits_and_events_on_both_sides(
    facade: AssessmentStoreMigration, store: AssessmentStore
) -> None:
    received: list[AssessmentEventMessage] = []
    with facade.subscribe(SEED_EVENT_TYPES, received.append, poll_interval_seconds=0.05):
        facade.set_overrides({"percentage": 0})
        legacy_id = facade.create_assessment(local())
        broken_id = facade.create_assessment(request(assessment_type="failing", server_name=None))
        held_id = facade.create_assessment(request(assessment_type="blocked", server_name=None))
        facade.set_overrides({"percentage": 100})
        store_id = facade.create_assessment(local())
        dropped_id = facade.create_assessment(local())

        assert facade.wait_for_completion(legacy_id, timeout=10).result_data == {"ok": True}
        assert facade.wait_for_completion(broken_id, timeout=10).state == "failed"
        with pytest.raises(AssessmentTimeoutError):
            facade.wait_for_completion(held_id, timeout=0.2)
        assert facade.cancel_assessment(held_id, "enough").state == "cancelled"
        RELEASE.set()  # its handler finds it cancelled at its next report and stops

        store.start_processing(store_id, "w1")
        store.update_progress(store_id, 50, "half")
        store.complete_assessment(store_id, {"ok": "store"})
        assert facade.wait_for_completion(store_id, timeout=10).result_data == {"ok": "store"}
        facade.cancel_assessment(dropped_id, "not needed")
        assert facade.get_state(dropped_id).state == "cancelled"

        def types_of(assessment_id: str) -> list[str]:
            return [e.type for e in received if e.assessment_id == assessment_id]

        lifecycle = [
            "assessment.created",
            "assessment.started",
            "assessment.progress",
            "assessment.completed",
        ]
        wait_until(
            lambda: types_of(store_id) == lifecycle and len(types_of(dropped_id)) == 2,
            timeout=10,
            message=lambda: f"store events: {[(e.assessment_id, e.type) for e in received]}",
        )
    assert types_of(legacy_id) == lifecycle
    assert types_of(broken_id) == ["assessment.created", "assessment.started", "assessment.failed"]
    assert types_of(held_id)[-1] == "assessment.cancelled"
    assert types_of(dropped_id) == ["assessment.created", "assessment.cancelled"]
    legacy = facade.get_state(legacy_id)
    assert (legacy.state, legacy.version, legacy.progress) == ("completed", 4, 100)
    assert [e.version for e in received if e.assessment_id == legacy_id] == [1, 2, 3, 4]
    assert facade.get_state(broken_id).error_message == "RuntimeError: legacy boom"
    with pytest.raises(AssessmentNotFoundError):
        facade.get_state("nowhere-at-all")


def test_the_old_catch_all_event_name_still_works(facade: AssessmentStoreMigration) -> None:
    received: list[AssessmentEventMessage] = []
    with facade.subscribe(["assessment.updated"], received.append, poll_interval_seconds=0.05):
        facade.set_overrides({"percentage": 0})
        legacy_id = facade.create_assessment(local())
        facade.set_overrides({"percentage": 100})
        store_id = facade.create_assessment(local())
        facade.wait_for_completion(legacy_id, timeout=10)
        wait_until(
            lambda: (
                {e.assessment_id for e in received} == {legacy_id, store_id} and len(received) == 5
            ),
            timeout=10,
            message=lambda: f"got {[(e.assessment_id, e.type, e.version) for e in received]}",
        )
    assert {e.type for e in received} == {"assessment.updated"}
    with pytest.raises(InvalidInputError):
        facade.subscribe(["assessment.exploded"], received.append)


def test_status_counts_each_side_and_completion(store: AssessmentStore) -> None:
    store.handlers.register("stepping", stepping)
    legacy = EventEmitterBackend(store.settings, handlers=store.handlers, autostart=False)
    with AssessmentStoreMigration(store, legacy, refresh_seconds=0.1) as facade:
        facade.set_overrides({"percentage": 0})
        for _ in range(3):
            facade.create_assessment(local())
        facade.set_overrides({"percentage": 100})
        store_ids = [facade.create_assessment(local()) for _ in range(2)]
        status = facade.get_migration_status()
        assert (status.store.held, status.store.in_flight) == (2, 2)
        assert (status.legacy.held, status.legacy.in_flight) == (3, 3)
        assert status.legacy.by_state == {"pending": 3}
        assert status.routed == {"store": 2, "legacy": 3}
        assert status.percentage == 100 and "percentage" in status.overrides
        assert not facade.is_migration_complete()  # the legacy side has work in flight
        assert legacy.run_pending() == 3
        assert facade.is_migration_complete()
        store.start_processing(store_ids[0], "w1")
        store.fail_assessment(store_ids[0], "boom")  # a retry is coming: in flight
        status = facade.get_migration_status()
        assert (status.store.in_flight, status.store.by_state["failed"]) == (2, 1)
        assert (status.legacy.held, status.legacy.in_flight) == (3, 0)
        wire = status.to_wire()
        assert wire["legacy"]["inFlight"] == 0 and wire["storeShare"] == 100
        facade.set_overrides({"percentage": 99})
        assert not facade.is_migration_complete()
        facade.set_overrides({"enable_store": False, "percentage": 100})
        assert not facade.is_migration_complete()
    legacy.close()


def test_bad_override_values_write_nothing(facade: AssessmentStoreMigration) -> None:
    facade.set_overrides({"percentage": 40})
    for values in ({"percentage": 101}, {"percentage": 30, "enable_store": "no"}, {}):
        with pytest.raises(InvalidInputError):
            facade.set_overrides(values)
    config = facade.overrides.refresh()
    assert (config.percentage, config.enable_store) == (40, True)


def unreachable(settings: Settings, **extra: Any) -> AssessmentStore:
    broken = load_settings(
        database_url="postgresql+psycopg2://postgres@127.0.0.1:1/nowhere",
        redis_url=settings.redis_url,
        **extra,
    )
    return quiet_store(broken)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_store_failure_falls_back_to_legacy_only_when_enabled(settings: Settings) -> None:
    store = unreachable(settings, migration_legacy_fallback=True)
    store.handlers.register("stepping", stepping)
    routed = ("assessmentstore_migration_routed_total", {"side": "legacy", "reason": "fallback"})
    before = sample(routed[0], **routed[1])
    with AssessmentStoreMigration(store, background=False) as facade:
        assessment_id = facade.create_assessment(local())
        assert facade.legacy.holds(assessment_id)
        assert facade.wait_for_completion(assessment_id, timeout=10).state == "completed"
        with pytest.raises(InvalidInputError):  # bad input never falls back
            facade.create_assessment(local(timeout=0.01))
    assert sample(routed[0], **routed[1]) == before + 1

    store = unreachable(settings)
    store.handlers.register("stepping", stepping)
    with AssessmentStoreMigration(store, background=False) as facade:
        with pytest.raises(StoreUnavailableError):
            facade.create_assessment(local())
        assert facade.legacy.counts().held == 0


def test_audit_logging_and_metrics_record_each_decision(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    audited = load_settings(
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        migration_enable_audit_logging=True,
        migration_percentage=0,
    )
    store = quiet_store(audited)
    store.handlers.register("stepping", stepping)
    hashed = ("assessmentstore_migration_routed_total", {"side": "legacy", "reason": "hash"})
    before = sample(hashed[0], **hashed[1])
    caplog.set_level("INFO", logger="assessment_store.migration")
    with AssessmentStoreMigration(store, refresh_seconds=0.1) as facade:
        assessment_id = facade.create_assessment(local())
        facade.wait_for_completion(assessment_id, timeout=10)
        wait_until(
            lambda: "action=assessment_completed result=success" in caplog.text,
            timeout=5,
            message=lambda: f"no completion audit line in: {caplog.text}",
        )
        facade.legacy.close()
    store.close()
    assert f"migration_routed: {assessment_id} -> legacy (hash, bucket " in caplog.text
    assert f"action=assessment_created result=pending assessment={assessment_id}" in caplog.text
    assert sample(hashed[0], **hashed[1]) == before + 1
