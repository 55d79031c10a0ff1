"""Encryption at rest against a real database: the raw columns (read with plain SQL)
hold no plaintext while every API returns it; plaintext rows from before keep
reading; a missing or wrong key fails clearly and writes nothing."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence

import pytest
from sqlalchemy import Engine, text

from assessment_store import AssessmentFilters, AssessmentRequest, AssessmentState, AssessmentStore
from assessment_store.config import Settings
from assessment_store.dispatch import DispatchItem
from assessment_store.errors import AssessmentConflictError, DecryptionError
from assessment_store.events import AssessmentEventMessage
from assessment_store.transfer import export_lines, import_lines
from tests.chain import audit_chain_problems
from tests.encrypted import (
    ERROR_SECRET,
    K1,
    K2,
    OPTION_SECRET,
    RESULT_SECRET,
    key_ids_in_use,
    raw_snapshot,
    raw_values,
    with_keys,
)
from tests.factories import quiet_store, request
from tests.waiting import wait_until

SECRETS = (OPTION_SECRET, RESULT_SECRET, ERROR_SECRET)


@pytest.fixture
def keyed(settings: Settings) -> Iterator[AssessmentStore]:
    store = quiet_store(with_keys(settings, f"k1:{K1}"))
    yield store
    store.close()


def secret_request(**fields: object) -> AssessmentRequest:
    return request(options={"server_filter": [OPTION_SECRET], "deep_scan": True}, **fields)


def populate(store: AssessmentStore) -> dict[str, str]:
    """A pending, a completed, a failed (retrying) and a dead-lettered assessment, all
    carrying the secrets; their ids by name."""
    ids = {name: store.create_assessment(secret_request()) for name in ("pending", "done")}
    ids["failed"] = store.create_assessment(secret_request())
    ids["dead"] = store.create_assessment(secret_request(server_name="db9:5432"))
    for name in ("done", "failed", "dead"):
        store.start_processing(ids[name], "worker-1")
    store.complete_assessment(ids["done"], {"finding": RESULT_SECRET, "score": 7})
    store.fail_assessment(ids["failed"], f"ValueError: {ERROR_SECRET}")
    store.fail_assessment(ids["dead"], f"PermanentError: {ERROR_SECRET}", permanent=True)
    return ids


def test_the_raw_columns_hold_no_plaintext_while_every_api_returns_it(
    keyed: AssessmentStore, raw_engine: Engine
) -> None:
    ids = populate(keyed)
    raw = raw_values(raw_engine)
    assert not [secret for secret in SECRETS if secret in raw]
    assert "deepScan" not in raw  # the options' keys too, not only their values
    assert key_ids_in_use(raw_engine) == {"k1"}
    with raw_engine.connect() as conn:
        plain = conn.execute(
            text(
                "SELECT request_data ->> 'serverName', request_data -> 'options' ->> 'kid' "
                "FROM assessment_states WHERE assessment_id = :id"
            ),
            {"id": ids["dead"]},
        ).one()
        assert tuple(plain) == ("db9:5432", "k1")  # only options is sealed
        assert audit_chain_problems(conn) == []

    done = keyed.get_state(ids["done"])
    assert done.result_data == {"finding": RESULT_SECRET, "score": 7}
    assert done.request_data.options.server_filter == [OPTION_SECRET]
    assert keyed.get_state(ids["failed"]).error_message == f"ValueError: {ERROR_SECRET}"
    listed = {a.assessment_id: a for a in keyed.list_assessments().items}
    assert listed[ids["done"]].result_data == done.result_data
    assert listed[ids["dead"]].error_message == f"PermanentError: {ERROR_SECRET}"
    assert all(a.request_data.options.deep_scan for a in listed.values())
    reasons = [e.change_reason for e in keyed.get_audit_trail(ids["failed"])]
    assert reasons[-1] == f"failed: ValueError: {ERROR_SECRET}"
    exported = "\n".join(export_lines(keyed, AssessmentFilters()))
    assert all(secret in exported for secret in SECRETS)
    waited = keyed.wait_for_completion(ids["done"], timeout=5)
    assert waited.result_data == done.result_data


def test_filters_on_the_plain_columns_keep_working(
    keyed: AssessmentStore,
) -> None:
    ids = populate(keyed)
    page = keyed.list_assessments
    assert [a.assessment_id for a in page(AssessmentFilters(states=["completed"])).items] == [
        ids["done"]
    ]
    assert {a.assessment_id for a in page(AssessmentFilters(server_name="db9:5432")).items} == {
        ids["dead"]
    }
    assert len(page(AssessmentFilters(assessment_type="health", source="installer")).items) == 4
    assert len(page(AssessmentFilters(created_by="system")).items) == 4
    first = page(AssessmentFilters(limit=2))
    rest = page(AssessmentFilters(limit=10, cursor=first.next_cursor))
    assert len(first.items) + len(rest.items) == 4
    stats = keyed.get_assessment_stats()
    assert stats.counts_by_state[AssessmentState.FAILED] == 2


def test_turning_encryption_on_over_plaintext_rows_reads_both(
    store: AssessmentStore, keyed: AssessmentStore, raw_engine: Engine
) -> None:
    before = populate(store)  # encryption off
    assert all(secret in raw_values(raw_engine) for secret in SECRETS)
    after = populate(keyed)
    assert key_ids_in_use(raw_engine) == {"plain", "k1"}
    for ids in (before, after):
        assert keyed.get_state(ids["done"]).result_data == {"finding": RESULT_SECRET, "score": 7}
        assert keyed.get_state(ids["failed"]).error_message == f"ValueError: {ERROR_SECRET}"
        trail = keyed.get_audit_trail(ids["dead"])
        assert trail[-1].change_reason == f"permanent failure: PermanentError: {ERROR_SECRET}"
    assert len(keyed.list_assessments().items) == 8
    # A plaintext row changed by a keyed process: its new values are sealed.
    keyed.start_processing(before["pending"], "worker-2")
    keyed.complete_assessment(before["pending"], {"finding": "later-" + RESULT_SECRET})
    with raw_engine.connect() as conn:
        result = conn.execute(
            text("SELECT result_data ->> 'kid' FROM assessment_states WHERE assessment_id = :id"),
            {"id": before["pending"]},
        ).scalar_one()
    assert result == "k1"


@pytest.mark.parametrize("ring", [f"k9:{K2}", f"k1:{K2}"], ids=["missing key", "wrong key"])
def test_a_missing_or_wrong_key_fails_clearly_and_writes_nothing(
    keyed: AssessmentStore, settings: Settings, raw_engine: Engine, ring: str
) -> None:
    ids = populate(keyed)
    running = keyed.create_assessment(secret_request())
    keyed.start_processing(running, "worker-1")
    before = raw_snapshot(raw_engine)
    with quiet_store(with_keys(settings, ring)) as other:
        attempts: list[Callable[[], object]] = [
            lambda: other.get_state(ids["done"]),
            lambda: other.list_assessments(),
            lambda: other.get_audit_trail(ids["failed"]),
            lambda: other.start_processing(ids["pending"], "worker-2"),
            lambda: other.update_progress(running, 50, "half"),
            lambda: other.complete_assessment(running, {"ok": True}),
            lambda: other.fail_assessment(running, "boom"),
            lambda: other.cancel_assessment(ids["pending"], "no"),
            lambda: other.retry_assessment(ids["failed"]),
        ]
        for attempt in attempts:
            with pytest.raises(DecryptionError) as refused:
                attempt()
            message = str(refused.value)
            assert "'k1'" in message and "ASSESSMENT_STORE_ENCRYPTION_KEYS" in message
            assert K1 not in message and K2 not in message
    assert raw_snapshot(raw_engine) == before
    assert keyed.get_state(ids["done"]).result_data == {"finding": RESULT_SECRET, "score": 7}


def test_with_encryption_off_an_encrypted_value_is_refused_never_returned(
    keyed: AssessmentStore, store: AssessmentStore
) -> None:
    ids = populate(keyed)
    for read in (
        lambda: store.get_state(ids["done"]),
        lambda: store.list_assessments(),
        lambda: store.get_audit_trail(ids["failed"]),
    ):
        with pytest.raises(DecryptionError, match="ENCRYPTION_KEYS is not set"):
            read()


def test_export_then_import_with_encryption_keeps_the_values_sealed(
    keyed: AssessmentStore, raw_engine: Engine
) -> None:
    populate(keyed)
    exported = "\n".join(export_lines(keyed, AssessmentFilters())) + "\n"
    with raw_engine.begin() as conn:
        conn.execute(text("TRUNCATE assessment_states CASCADE"))
    assert import_lines(keyed, io.BytesIO(exported.encode())) == 4
    assert not [secret for secret in SECRETS if secret in raw_values(raw_engine)]
    again = "\n".join(export_lines(keyed, AssessmentFilters())) + "\n"
    assert again == exported
    with raw_engine.connect() as conn:
        assert audit_chain_problems(conn) == []


class Recording:
    def __init__(self) -> None:
        self.items: list[DispatchItem] = []

    def dispatch(self, items: Sequence[DispatchItem]) -> None:
        self.items.extend(items)

    def close(self) -> None:
        return None


def test_idempotent_repeats_and_redispatch_read_the_sealed_request(
    settings: Settings, raw_engine: Engine
) -> None:
    recording = Recording()
    with AssessmentStore(with_keys(settings, f"k1:{K1}"), dispatcher=recording) as keyed:
        first = keyed.create_assessment(request(id="order-1", options={"timeout": 42.0}))
        assert keyed.create_assessment(request(id="order-1", options={"timeout": 42.0})) == first
        with pytest.raises(AssessmentConflictError):
            keyed.create_assessment(request(id="order-1", options={"timeout": 43.0}))
        with raw_engine.begin() as conn:
            conn.execute(text("UPDATE assessment_states SET updated_at = now() - interval '1 day'"))
        recording.items.clear()
        assert keyed.run_maintenance_job("redispatch").affected == 1
    assert [(i.assessment_id, i.timeout_seconds) for i in recording.items] == [(first, 42.0)]


def test_subscribers_get_the_failure_reason_in_plaintext(keyed: AssessmentStore) -> None:
    received: list[AssessmentEventMessage] = []
    with keyed.subscribe(["assessment.failed"], received.append, poll_interval_seconds=0.05):
        failed_id = keyed.create_assessment(secret_request())
        keyed.start_processing(failed_id, "worker-1")
        keyed.fail_assessment(failed_id, ERROR_SECRET)
        wait_until(lambda: bool(received), timeout=10, message="no assessment.failed event")
    assert received[0].reason == f"failed: {ERROR_SECRET}"
