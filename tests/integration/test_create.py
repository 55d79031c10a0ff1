"""Creating assessments: single, batch, idempotent ids, and refusals that write nothing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import Connection, text

from assessment_store import (
    AssessmentConflictError,
    AssessmentNotFoundError,
    AssessmentState,
    AssessmentStore,
    UnknownAssessmentTypeError,
)
from tests.chain import audit_chain_problems
from tests.factories import request


def count_rows(conn: Connection) -> tuple[int, int]:
    states = conn.execute(text("SELECT count(*) FROM assessment_states")).scalar_one()
    audits = conn.execute(text("SELECT count(*) FROM assessment_state_audit")).scalar_one()
    return int(states), int(audits)


def test_a_new_assessment_is_pending_at_version_one_with_its_first_audit_row(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    assessment_id = store.create_assessment(request(priority=8), created_by="svc-a")
    got = store.get_state(assessment_id)
    assert (got.state, got.version, got.progress, got.retry_count) == (
        AssessmentState.PENDING,
        1,
        0,
        0,
    )
    assert got.priority == 8 and got.created_by == "svc-a"
    assert got.request_data.id == assessment_id
    assert got.completed_at is None and got.created_at.tzinfo is not None
    trail = store.get_audit_trail(assessment_id)
    assert [(e.old_state, e.new_state, e.version_from, e.version_to) for e in trail] == [
        (None, AssessmentState.PENDING, None, 1)
    ]
    assert trail[0].changed_by == "svc-a"
    assert audit_chain_problems(raw_conn) == []


def test_a_plain_dict_in_camel_case_is_accepted(store: AssessmentStore) -> None:
    assessment_id = store.create_assessment(
        {"assessmentType": "security", "serverName": "example.test:443", "priority": 2}
    )
    got = store.get_state(assessment_id)
    assert got.assessment_type == "security" and got.server_name == "example.test:443"


def test_repeating_a_create_with_the_same_id_returns_the_existing_assessment(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    first = store.create_assessment(request(id="client-42", server_name="a"))
    again = store.create_assessment(request(id="client-42", server_name="a"))
    assert first == again == "client-42"
    assert count_rows(raw_conn) == (1, 1)


def test_the_same_id_with_a_different_request_is_a_conflict(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    store.create_assessment(request(id="client-42", server_name="a"))
    with pytest.raises(AssessmentConflictError, match="client-42"):
        store.create_assessment(request(id="client-42", server_name="b"))
    with pytest.raises(AssessmentConflictError):
        store.create_assessment(request(id="client-42", server_name="a"), created_by="other")
    assert count_rows(raw_conn) == (1, 1)
    assert store.get_state("client-42").request_data.server_name == "a"


def test_batch_create_writes_every_row_in_input_order(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    ids = store.batch_create_assessments(
        [request(priority=p, server_name=f"s{p}") for p in range(1, 11)]
    )
    assert len(ids) == len(set(ids)) == 10
    assert [store.get_state(i).priority for i in ids] == list(range(1, 11))
    assert count_rows(raw_conn) == (10, 10)
    assert audit_chain_problems(raw_conn) == []


def test_a_batch_with_one_conflicting_request_writes_nothing(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    store.create_assessment(request(id="taken", server_name="a"))
    with pytest.raises(AssessmentConflictError):
        store.batch_create_assessments(
            [request(id="fresh-1"), request(id="taken", server_name="b"), request(id="fresh-2")]
        )
    assert count_rows(raw_conn) == (1, 1)
    with pytest.raises(AssessmentNotFoundError):
        store.get_state("fresh-1")


def test_a_batch_repeating_one_id_with_two_requests_is_a_conflict(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    with pytest.raises(AssessmentConflictError):
        store.batch_create_assessments([request(id="d", priority=1), request(id="d", priority=2)])
    assert count_rows(raw_conn) == (0, 0)


def test_a_batch_with_one_invalid_request_writes_nothing_and_names_the_field(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    with pytest.raises(ValidationError) as caught:
        store.batch_create_assessments(
            [{"assessmentType": "health"}, {"assessmentType": "health", "priority": 99}]
        )
    assert caught.value.errors()[0]["loc"] == ("priority",)
    assert count_rows(raw_conn) == (0, 0)


def test_an_unregistered_type_is_refused_listing_the_known_ones(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    with pytest.raises(UnknownAssessmentTypeError, match=r"assessmentType.*compliance"):
        store.create_assessment(request(assessment_type="inventory"))
    assert count_rows(raw_conn) == (0, 0)


def test_an_empty_batch_creates_nothing(store: AssessmentStore) -> None:
    assert store.batch_create_assessments([]) == []


def test_a_thousand_row_batch_is_created_in_one_transaction(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    ids = store.batch_create_assessments([request(server_name=f"h{i}") for i in range(1000)])
    assert len(set(ids)) == 1000
    assert count_rows(raw_conn) == (1000, 1000)


def test_a_timeout_the_broker_would_redeliver_within_is_refused(store: AssessmentStore) -> None:
    from assessment_store import InvalidInputError

    limit = store.settings.broker_visibility_timeout_seconds
    with pytest.raises(InvalidInputError, match="timeout"):
        store.create_assessment(request(timeout=limit + 1))


@pytest.mark.parametrize(("field", "value"), [("timeout", 0.5), ("timeout", 1e-300)])
def test_a_timeout_too_small_to_run_is_refused_naming_the_field_and_the_minimum(
    store: AssessmentStore, raw_conn: Connection, field: str, value: float
) -> None:
    from assessment_store import InvalidInputError

    with pytest.raises(InvalidInputError, match="at least 1 second") as caught:
        store.create_assessment(request(**{field: value}))
    assert caught.value.field == "timeout"
    assert count_rows(raw_conn) == (0, 0)


def test_a_too_small_options_timeout_is_refused_naming_options_timeout(
    store: AssessmentStore,
) -> None:
    from assessment_store import AssessmentOptions, InvalidInputError

    with pytest.raises(InvalidInputError) as caught:
        store.create_assessment(request(options=AssessmentOptions(timeout=0.2)))
    assert caught.value.field == "options.timeout"
