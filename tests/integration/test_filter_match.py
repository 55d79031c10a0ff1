"""``filter_match.in_view`` (a list's filters in Python, for the live stream) gives the
answers of the SQL list (``AssessmentStore.list_assessments``) for generated filters
over a fixed set of stored assessments of every state, creator, type and source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, text

from assessment_store.filter_match import in_view
from assessment_store.models import Assessment, AssessmentFilters
from assessment_store.service import AssessmentStore
from assessment_store.states import AssessmentState
from tests.factories import request

BASE = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
TYPES = ["health", "security", "compliance"]
SERVERS = ["web-1.example:443", "WEB-2.Example:80", "db-1:5432", "Café-01:22", "x_y%z:1", None]
CREATORS = ["alice", "bob", "Alice"]
ERRORS = ["Connection REFUSED by db-1", "timeout after 30s", "100% disk_full on /var"]


def _stored(store: AssessmentStore, raw_engine: Engine) -> list[Assessment]:
    """36 assessments: each server, type, creator and source, in every state, some
    created at the very same moment, some a microsecond apart."""
    ids = []
    for n in range(36):
        fields: dict[str, Any] = {
            "assessment_type": TYPES[n % 3],
            "source": "compliance" if n % 4 == 0 else "installer",
        }
        if n % 5 == 0:
            fields["id"] = f"Fixed-ID-{n}.DB-1"
        ids.append(store.create_assessment(request(**fields), created_by=CREATORS[n % 3]))
    for n, assessment_id in enumerate(ids):
        state = n % 5
        if state >= 1:
            store.start_processing(assessment_id, f"w{n}")
        if state == 2:
            store.complete_assessment(assessment_id, {"n": n})
        elif state == 3:
            store.fail_assessment(assessment_id, ERRORS[n % 3], permanent=n % 2 == 0)
        elif state == 4:
            store.cancel_assessment(assessment_id, "no")
    with raw_engine.begin() as conn:
        for n, assessment_id in enumerate(ids):
            # Pairs share a moment; neighbouring moments are 1 µs or 1 s apart. Server
            # names set here, past creation's host:port rule (older rows may hold any).
            moment = BASE + timedelta(seconds=n // 4, microseconds=(n // 2) % 2)
            set_row(conn, assessment_id, created_at=moment, server_name=SERVERS[n % 6])
    return [store.get_fresh_state(i) for i in ids]


def set_row(conn: Connection, assessment_id: str, **values: object) -> None:
    assignments = ", ".join(f"{column} = :{column}" for column in values)
    conn.execute(
        text(f"UPDATE assessment_states SET {assignments} WHERE assessment_id = :id"),
        {**values, "id": assessment_id},
    )


@pytest.fixture
def stored(store: AssessmentStore, raw_engine: Engine) -> list[Assessment]:
    found = _stored(store, raw_engine)
    assert {a.state for a in found} == set(AssessmentState)
    assert any(a.error_message for a in found)
    return found


def _case_flipped(draw: st.DrawFn, value: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(value), max_size=len(value)))
    return "".join(c.swapcase() if f else c for c, f in zip(value, flips, strict=True))


@st.composite
def searches(draw: st.DrawFn, stored: list[Assessment]) -> str:
    """A substring (any case) of a stored id, server name or error, or other text."""
    sources = [a.assessment_id for a in stored]
    sources += [a.server_name for a in stored if a.server_name]
    sources += [a.error_message for a in stored if a.error_message]
    if draw(st.booleans()):
        value = draw(st.sampled_from(sources))
        start = draw(st.integers(0, len(value) - 1))
        end = draw(st.integers(start + 1, min(len(value), start + 8)))
        return _case_flipped(draw, value[start:end])
    return draw(st.text(alphabet="abcdeDB-1_%.:é É", min_size=1, max_size=4))


@st.composite
def moments(draw: st.DrawFn, stored: list[Assessment]) -> datetime:
    """A stored creation time, or one a microsecond either side (the bounds' edges)."""
    at = draw(st.sampled_from([a.created_at for a in stored]))
    return at + timedelta(microseconds=draw(st.sampled_from([-1, 0, 1])))


@st.composite
def filters(draw: st.DrawFn, stored: list[Assessment]) -> AssessmentFilters:
    def maybe(strategy: st.SearchStrategy[Any]) -> Any:
        return draw(st.none() | strategy)

    states = maybe(st.lists(st.sampled_from(list(AssessmentState)), min_size=1, max_size=3))
    return AssessmentFilters(
        states=states,
        assessment_type=maybe(st.sampled_from([*TYPES, "other"])),
        server_name=maybe(st.sampled_from([s for s in SERVERS if s] + ["web-1.example"])),
        source=maybe(st.sampled_from(["installer", "compliance"])),
        created_by=maybe(st.sampled_from([*CREATORS, "carol"])),
        created_after=maybe(moments(stored)),
        created_before=maybe(moments(stored)),
        q=maybe(searches(stored)),
        limit=1000,
    )


def listed(store: AssessmentStore, chosen: AssessmentFilters) -> set[str]:
    page = store.list_assessments(chosen)
    assert page.next_cursor is None  # all of them on one page
    return {a.assessment_id for a in page.items}


def matched(chosen: AssessmentFilters, stored: list[Assessment]) -> set[str]:
    return {a.assessment_id for a in stored if in_view(chosen, a, search_errors=True)}


def test_in_view_agrees_with_the_sql_list_for_generated_filters(
    store: AssessmentStore, stored: list[Assessment]
) -> None:
    seen_sizes: set[int] = set()

    @settings(
        max_examples=250,
        deadline=None,
        database=None,
        derandomize=True,  # the same filters every run: CI never meets a new one at random
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(chosen=filters(stored))
    @example(chosen=AssessmentFilters(limit=1000))
    @example(chosen=AssessmentFilters(q="db-1", limit=1000))  # id, server and error
    @example(chosen=AssessmentFilters(q="REFUSED", limit=1000))  # the error alone
    @example(chosen=AssessmentFilters(q="%", limit=1000))  # LIKE's wildcard, literally
    @example(chosen=AssessmentFilters(q="_", limit=1000))
    @example(chosen=AssessmentFilters(q="CAFÉ", limit=1000))
    def agrees(chosen: AssessmentFilters) -> None:
        expected = listed(store, chosen)
        assert matched(chosen, stored) == expected, chosen
        seen_sizes.add(len(expected))

    agrees()
    # The generated filters were not all empty-handed nor all everything.
    assert 0 in seen_sizes and len(stored) in seen_sizes and len(seen_sizes) > 10


def test_the_created_bounds_are_from_inclusive_and_to_exclusive(
    store: AssessmentStore, stored: list[Assessment]
) -> None:
    at = stored[8].created_at
    same_moment = {a.assessment_id for a in stored if a.created_at == at}
    assert len(same_moment) == 2
    for chosen, expected in (
        (AssessmentFilters(created_after=at, created_before=at, limit=1000), set()),
        (
            AssessmentFilters(
                created_after=at, created_before=at + timedelta(microseconds=1), limit=1000
            ),
            same_moment,
        ),
    ):
        assert listed(store, chosen) == expected
        assert matched(chosen, stored) == expected


def test_states_and_a_search_of_errors_agree(
    store: AssessmentStore, stored: list[Assessment]
) -> None:
    failed = {a.assessment_id for a in stored if a.state is AssessmentState.FAILED}
    chosen = AssessmentFilters(states=[AssessmentState.FAILED], q="refused", limit=1000)
    expected = {
        a.assessment_id
        for a in stored
        if a.assessment_id in failed and "refused" in (a.error_message or "").lower()
    }
    assert expected and listed(store, chosen) == expected == matched(chosen, stored)
    # Without searching errors (encryption on), only ids and servers are matched.
    no_errors = {a.assessment_id for a in stored if in_view(chosen, a, search_errors=False)}
    assert no_errors == set()


def test_in_view_lowercases_as_postgresql_does(store: AssessmentStore, raw_engine: Engine) -> None:
    # PostgreSQL lowercases one character at a time: dotted capital I -> 'i', capital
    # sigma -> sigma; Python's str.lower() gives 'i' and a combining dot (two code
    # points), and at a word's end the final sigma.
    dotted_i = "\N{LATIN CAPITAL LETTER I WITH DOT ABOVE}"
    alpha, sigma = "\N{GREEK CAPITAL LETTER ALPHA}", "\N{GREEK CAPITAL LETTER SIGMA}"
    small_alpha, small_sigma = "\N{GREEK SMALL LETTER ALPHA}", "\N{GREEK SMALL LETTER SIGMA}"
    servers = {
        f"{dotted_i}zmir-1:22": ("iz", f"{dotted_i}z", "zmir"),
        f"{alpha}{sigma}-2:22": (
            small_alpha + small_sigma,
            small_sigma + "-",
            alpha + sigma,
            small_alpha,
        ),
    }
    disagreements = []
    for server, queries in servers.items():
        assessment_id = store.create_assessment(request(), created_by="alice")
        with raw_engine.begin() as conn:
            set_row(conn, assessment_id, server_name=server)
        current = store.get_fresh_state(assessment_id)
        for q in queries:
            chosen = AssessmentFilters(q=q, server_name=server, limit=1000)
            sql = assessment_id in listed(store, chosen)
            python = in_view(chosen, current, search_errors=True)
            if sql != python:
                disagreements.append(f"server {server!r}, q {q!r}: SQL {sql}, in_view {python}")
    assert disagreements == [], "\n".join(disagreements)
