"""Text search (``q``, search_assessments): ids, server names and error messages,
any case, with the other filters, pagination and the owner rule; LIKE's
metacharacters match themselves; the trigram index serves queries of 3+ characters."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from sqlalchemy import Connection, event, text

from assessment_store import AssessmentFilters, AssessmentState, AssessmentStore, InvalidInputError
from assessment_store.config import Settings
from assessment_store.db.text_search import PROBE_ROWS, SEARCH_INDEX
from assessment_store.errors import ForbiddenError
from tests.factories import failed, processing, quiet_store, request


def ids(page: Any) -> set[str]:
    return {a.assessment_id for a in page.items}


def compliance(**fields: Any) -> Any:
    """A request whose server name is free text (compliance needs no reachable target)."""
    return request(assessment_type="compliance", **fields)


def test_search_finds_ids_server_names_and_error_messages_in_any_case(
    store: AssessmentStore,
) -> None:
    by_id = store.create_assessment(request(id="Deploy-Nightly-42", server_name="10.0.0.1:80"))
    by_server = store.create_assessment(request(server_name="DB-Primary.eu-west.example.com:5432"))
    by_error = failed(
        store, "TLS handshake Timed Out after 30s", server_name="10.0.0.2:80"
    ).assessment_id
    other = store.create_assessment(request(server_name="10.0.0.3:80"))

    assert ids(store.search_assessments("nightly-4")) == {by_id}
    assert ids(store.search_assessments("deploy-NIGHTLY")) == {by_id}
    assert ids(store.search_assessments("primary.EU")) == {by_server}
    assert ids(store.search_assessments("timed out")) == {by_error}
    assert ids(store.search_assessments("10.0.0.")) == {by_id, by_error, other}
    assert ids(store.search_assessments(other[:8])) == {other}
    assert ids(store.search_assessments("no such thing")) == set()


def test_search_is_the_list_with_one_more_filter(store: AssessmentStore) -> None:
    # Combined with a state filter, and pages walked with the cursor: each match once.
    matching = store.batch_create_assessments(
        [request(server_name=f"web-{i:02d}.shop.example:443") for i in range(12)]
    )
    running = {processing(store, server_name="web-99.shop.example:443").assessment_id}
    store.batch_create_assessments([request(server_name="db-1.shop.example:5432")])

    pending = AssessmentFilters(states=[AssessmentState.PENDING], limit=5)
    seen: list[str] = []
    cursor = None
    while True:
        page = store.search_assessments(
            "WEB-", pending.model_copy(update={"cursor": cursor}) if cursor else pending
        )
        seen.extend(a.assessment_id for a in page.items)
        assert all(a.state is AssessmentState.PENDING for a in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(matching)
    assert (
        ids(
            store.search_assessments("web-", AssessmentFilters(states=[AssessmentState.PROCESSING]))
        )
        == running
    )
    # ``q`` in the filters is the same search; the query argument replaces it.
    assert ids(store.list_assessments(AssessmentFilters(q="web-99"))) == running
    assert ids(store.search_assessments("web-99", AssessmentFilters(q="db-1"))) == running


def test_an_owner_searches_only_their_own_assessments(store: AssessmentStore) -> None:
    mine = store.create_assessment(request(server_name="shared-name.example:80"), created_by="al")
    theirs = store.create_assessment(
        request(server_name="shared-name.example:81"), created_by="bob"
    )
    assert ids(store.search_assessments("shared-name", owner="al")) == {mine}
    assert ids(store.search_assessments("shared-name")) == {mine, theirs}
    with pytest.raises(ForbiddenError, match="createdBy"):
        store.search_assessments("shared", AssessmentFilters(created_by="bob"), owner="al")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("100%", {"percent"}),  # unescaped, "100%" would match "1000 rows" too
        ("a_b", {"underscore"}),  # unescaped, "_" would match the "x" of "axb"
        ("x\\y", {"backslash"}),  # unescaped, "\y" would be "y", matching "xy"
        ("%", {"percent"}),  # short queries are literal too
        ("_", {"underscore"}),
        ("\\", {"backslash"}),
    ],
)
def test_like_metacharacters_match_only_themselves(
    store: AssessmentStore, query: str, expected: set[str]
) -> None:
    errors = {
        "percent": "disk 100% full",
        "thousand": "copied 1000 rows",
        "underscore": "bad key a_b",
        "axb": "bad key axb",
        "backslash": "path x\\y missing",
        "xy": "path xy missing",
    }
    by_id = {failed(store, error).assessment_id: name for name, error in errors.items()}
    found = {by_id[i] for i in ids(store.search_assessments(query))}
    assert found == expected


def test_short_queries_are_exact_too(store: AssessmentStore) -> None:
    wanted = store.create_assessment(compliance(server_name="Qz-host"))
    store.create_assessment(compliance(server_name="q-z-host"))
    assert ids(store.search_assessments("qZ")) == {wanted}
    assert ids(store.search_assessments("Z", AssessmentFilters(limit=1))) != set()


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("", "at least 1 character"),
        ("   ", "at least 1 character"),
        ("x" * 201, "at most 200 characters"),
        ("a\x00b", "NUL"),
        ("a\x1fb", "control characters"),
        ("evil\u202e", "bidirectional"),
        (42, "valid string"),
    ],
)
def test_a_bad_query_is_refused_naming_q(
    store: AssessmentStore, query: object, problem: str
) -> None:
    with pytest.raises(InvalidInputError, match=problem) as refused:
        store.search_assessments(query)  # type: ignore[arg-type]
    assert refused.value.field == "q"


def _bulk_insert(raw_conn: Connection, count: int, server: str = "web-{i}.example.com:443") -> None:
    """``count`` pending rows straight in SQL (``{i}`` in ``server`` is the row's number)."""
    raw_conn.execute(
        text(
            """
            INSERT INTO assessment_states (assessment_id, state, request_data,
                assessment_type, server_name, source, created_by, created_at)
            SELECT 'row-' || i, 'pending', jsonb_build_object('assessmentType', 'health',
                   'serverName', server), 'health', server, 'installer', 'loader',
                   now() - make_interval(secs => i % 7)
            FROM generate_series(1, :count) AS i,
                 LATERAL (SELECT replace(:server, '{i}', i::text) AS server) AS s
            """
        ),
        {"count": count, "server": server},
    )
    raw_conn.execute(text("ANALYZE assessment_states"))
    raw_conn.commit()


def test_pages_are_the_same_whether_few_or_many_rows_match(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    # Over PROBE_ROWS matches the page comes from the planner's ordered plan, under it
    # from the matches collected first: both give the list's order, and the cursor
    # walks from one to the other (created_at ties included: seven distinct times).
    _bulk_insert(raw_conn, PROBE_ROWS + 300, "bulk-{i}.example.com:443")
    expected = [
        row[0]
        for row in raw_conn.execute(
            text(
                "SELECT assessment_id FROM assessment_states WHERE server_name LIKE 'bulk-%' "
                "ORDER BY created_at DESC, assessment_id DESC"
            )
        )
    ]
    raw_conn.rollback()
    seen: list[str] = []
    cursor = None
    while True:
        filters = AssessmentFilters(limit=400, cursor=cursor)
        page = store.search_assessments("BULK-", filters)
        seen.extend(a.assessment_id for a in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == expected


def _executed_list_statements(store: AssessmentStore) -> list[tuple[str, Any]]:
    """Every statement the store's list engine runs from now on."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if "ORDER BY created_at DESC" in statement:
            seen.append((statement, params))

    event.listen(store.engines.replica, "before_cursor_execute", record)
    return seen


def _plan(raw_conn: Connection, statement: str, params: Any) -> str:
    cursor = raw_conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute("EXPLAIN " + statement, params)
    plan = "\n".join(row[0] for row in cursor.fetchall())
    cursor.close()
    return plan


def test_the_trigram_index_serves_queries_of_three_characters_or_more(
    store: AssessmentStore, raw_conn: Connection
) -> None:
    # 50,000 rows, one matching: the planner must pick the index on its own.
    _bulk_insert(raw_conn, 50_000)
    statements = _executed_list_statements(store)

    assert len(store.search_assessments("web-4242.").items) == 1
    assert len(store.search_assessments("w", AssessmentFilters(limit=3)).items) == 3
    [(indexed, indexed_params), (short, short_params)] = statements
    assert SEARCH_INDEX in _plan(raw_conn, indexed, indexed_params)
    # One or two characters have no trigram: read newest first, never the index.
    assert SEARCH_INDEX not in _plan(raw_conn, short, short_params)


def test_error_messages_are_not_searched_while_encryption_is_on(settings: Settings) -> None:
    key = base64.b64encode(bytes(range(32))).decode()
    encrypted = quiet_store(settings.model_copy(update={"encryption_keys": f"k1:{key}"}))
    try:
        lost = failed(encrypted, "secret-sauce exploded", server_name="10.9.9.9:80")
        assert encrypted.get_state(lost.assessment_id).error_message == "secret-sauce exploded"
        assert ids(encrypted.search_assessments("secret-sauce")) == set()
        # Ciphertext is base64 under a marker: its letters must not match either.
        assert ids(encrypted.search_assessments("enc:v1")) == set()
        assert ids(encrypted.search_assessments("10.9.9.9")) == {lost.assessment_id}
        assert ids(encrypted.search_assessments(lost.assessment_id[:5])) == {lost.assessment_id}
    finally:
        encrypted.close()
