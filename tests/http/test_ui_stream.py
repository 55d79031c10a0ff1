"""``GET /ui/events`` served by a real uvicorn (in a thread) and read as a browser's
EventSource reads it: who sees which rows, the assessment view's audit rows, and
resuming with ``Last-Event-ID`` after being away."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest

from assessment_store import live
from assessment_store.errors import StoreUnavailableError
from assessment_store.http.auth import Role
from assessment_store.service import AssessmentStore
from tests.factories import request
from tests.http.ui_support import (
    Event,
    EventStream,
    LiveServer,
    Page,
    changes_of,
    mentions,
    token,
)
from tests.http.ui_support import live_server as live_server
from tests.waiting import wait_until

ALICE = token("alice", Role.PRODUCER)
ADMIN = token("root", Role.ADMIN)


def create(store: AssessmentStore, owner: str, **fields: object) -> str:
    return store.create_assessment(request(**fields), created_by=owner)


def live_url(server: LiveServer, jwt: str, path: str) -> str:
    """The stream URL the page at ``path`` opens (its data-live attribute)."""
    response = httpx.get(server.url + path, headers=server.cookie(jwt), timeout=30)
    assert response.status_code == 200, response.text
    urls = [e.get("data-live") for e in Page(response.text).all(data_live=None)]
    assert len(urls) == 1 and urls[0].startswith("/ui/events?"), urls
    return urls[0]


@contextmanager
def stream(
    server: LiveServer, url: str, jwt: str, last_event_id: int | None = None
) -> Iterator[EventStream]:
    headers = server.cookie(jwt)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    with (
        httpx.Client(base_url=server.url, timeout=httpx.Timeout(30.0)) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "unsafe-inline" not in response.headers["content-security-policy"]
        yield EventStream(response)


def first_position(events: EventStream) -> Event:
    """The message that ends the replay (it carries the watermark), once subscribed."""
    return events.until(lambda e: e.id is not None)


def row_of(event: Event, assessment_id: str) -> dict[str, Any]:
    rows = [r for r in changes_of(event) if r["assessmentId"] == assessment_id]
    assert len(rows) == 1, (assessment_id, event)
    return rows[0]


def test_a_producers_stream_carries_only_its_own_assessments(
    live_server: LiveServer, store: AssessmentStore
) -> None:
    url = live_url(live_server, ALICE, "/ui")
    admin_url = live_url(live_server, ADMIN, "/ui")
    security_url = live_url(live_server, ADMIN, "/ui?type=security")
    with (
        stream(live_server, url, ALICE) as alice,
        stream(live_server, admin_url, ADMIN) as admin,
        stream(live_server, security_url, ADMIN) as security,
    ):
        first_position(alice)
        first_position(admin)
        first_position(security)
        # Three streams, one subscription to the feed (one read per batch for all).
        assert live_server.app.state.stream_hub.stream_count == 3
        assert live_server.app.state.live_feed.subscriber_count == 1
        bobs = create(store, "bob", server_name="bob-host:22")
        alices = create(store, "alice", server_name="alice-host:22")
        arrived = alice.until(lambda e: mentions(e, alices))
        row = row_of(arrived, alices)
        assert (row["insert"], row["version"], row["state"]) == (True, 1, "pending")
        assert alices in row["html"] and "alice-host:22" in row["html"]
        store.start_processing(bobs, "w-bob")
        store.start_processing(alices, "w-alice")
        alice.until_version(alices, 2)
        assert bobs not in alice.versions
        assert all("bob-host" not in str(e.data) for e in alice.seen)
        # The control: the same changes of bob's do reach an admin's stream.
        admin.until_version(bobs, 2)
        admin.until_version(alices, 2)
        # A filtered list is sent every visible change, but inserts only new rows that
        # its filters match (filter_match.in_view at the edge).
        audit = create(store, "bob", assessment_type="security")
        arrived = security.until(lambda e: mentions(e, audit))
        assert row_of(arrived, audit)["insert"] is True
        inserted = {r["assessmentId"] for e in security.seen for r in changes_of(e) if r["insert"]}
        assert inserted == {audit}
        assert {bobs, alices} <= set(security.versions)  # sent, not inserted
    nothing_open(live_server)


def nothing_open(server: LiveServer) -> None:
    """Once every page has gone, no stream is held and the feed has no subscriber
    (it stops reading)."""
    hub, feed = server.app.state.stream_hub, server.app.state.live_feed
    wait_until(
        lambda: hub.stream_count == 0 and feed.subscriber_count == 0,
        timeout=10,
        message=lambda: f"{hub.stream_count} streams, {feed.subscriber_count} subscribers",
    )


def test_resuming_with_last_event_id_replays_every_change_made_while_away(
    live_server: LiveServer, store: AssessmentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    early = create(store, "alice")  # before the page: never part of its replay
    url = live_url(live_server, ADMIN, "/ui")
    with stream(live_server, url, ADMIN) as events:
        position = first_position(events)
    assert position.id is not None
    # Away: changes of several assessments, by several creators.
    cancelled = create(store, "alice")
    running = create(store, "bob")
    store.start_processing(running, "w1")
    store.update_progress(running, 40, "halfway")
    store.cancel_assessment(cancelled, "changed my mind")
    third = create(store, "carol")
    changed = {cancelled, running, third}
    # The page's own URL still says since=<its first position>; the header wins.
    older = url.replace(url.split("since=")[1], "0")
    with stream(live_server, older, ADMIN, last_event_id=position.id) as resumed:
        replay = resumed.until(lambda e: e.id is not None)
    assert replay.event == "changes", replay
    rows = {r["assessmentId"]: r for r in changes_of(replay)}
    assert set(rows) == changed and early not in rows  # the replay began at the header's id
    for assessment_id in changed:
        current = store.get_fresh_state(assessment_id)
        assert (rows[assessment_id]["version"], rows[assessment_id]["state"]) == (
            current.version,
            current.state.value,
        )
    assert all(r["insert"] for r in rows.values())  # all new, all on the first page
    assert replay.id is not None and replay.id > position.id
    # Further behind than a replay may read (5 audit rows here): told to reload.
    monkeypatch.setattr(live, "MAX_REPLAY_ROWS", 5)
    assert sum(len(store.get_audit_trail(i)) for i in changed) == 6
    with stream(live_server, url, ADMIN, last_event_id=position.id) as resumed:
        told = resumed.until(lambda e: e.event != "")
        assert told.event == "reload" and told.data == {"reason": "too far behind"}
        with pytest.raises(StopIteration):
            resumed.next()  # and the stream ends there
    with stream(live_server, url, ADMIN, last_event_id=replay.id - 1) as resumed:
        assert resumed.until(lambda e: e.id is not None).event == "changes"


def test_an_assessment_stream_carries_its_audit_rows_and_resumes(
    live_server: LiveServer, store: AssessmentStore
) -> None:
    watched = create(store, "alice")
    other = create(store, "alice")
    viewer = token("alice", Role.VIEWER)
    url = live_url(live_server, ALICE, f"/ui/assessments/{watched}")
    assert f"id={watched}" in url and "view=assessment" in url
    with (
        stream(live_server, url, ALICE) as events,
        stream(live_server, url, viewer) as viewers,
    ):
        first_position(events)
        first_position(viewers)
        store.start_processing(other, "w-other")
        store.start_processing(watched, "w-watched")
        got = events.until(lambda e: mentions(e, watched))
        [seen_by_viewer] = changes_of(viewers.until(lambda e: mentions(e, watched)))
        assert seen_by_viewer["version"] == 2 and seen_by_viewer["audit"]
        assert 'name="action"' not in seen_by_viewer["html"]  # a viewer may not act
        assert "<form" not in seen_by_viewer["html"]
        [record] = changes_of(got)
        assert (record["version"], record["state"]) == (2, "processing")
        assert [a["version"] for a in record["audit"]] == [2]
        start = store.get_audit_trail(watched)[-1]
        assert start.changed_by in record["audit"][0]["html"]
        assert 'data-event="start"' in record["audit"][0]["html"]
        assert 'value="cancel"' in record["html"]  # the owner may cancel it
        assert all(not mentions(e, other) for e in events.seen)
        assert got.id is not None
        away_from = got.id
    store.update_progress(watched, 30, "a third")
    store.update_progress(watched, 60, "two thirds")
    with stream(live_server, url, ALICE, last_event_id=away_from) as resumed:
        replay = resumed.until(lambda e: e.id is not None)
    [record] = changes_of(replay)
    assert record["assessmentId"] == watched
    assert (record["version"], record["state"]) == (4, "processing")
    assert [a["version"] for a in record["audit"]] == [3, 4]
    assert 'value="60"' in record["html"]


def test_a_stream_ends_when_its_token_expires(
    live_server: LiveServer, store: AssessmentStore
) -> None:
    watched = create(store, "alice")
    short = token("alice", Role.PRODUCER, timedelta(seconds=2))
    url = f"/ui/events?view=assessment&id={watched}"
    with stream(live_server, url, short) as events:
        told = events.until(lambda e: e.event == "signed-out")
        assert told.data == {"reason": "the token expired"}
        with pytest.raises(StopIteration):
            events.next()
    again = httpx.get(live_server.url + url, headers=live_server.cookie(short), timeout=30)
    assert again.status_code == 204


def test_a_malformed_resume_position_is_ignored_not_a_server_error(
    live_server: LiveServer, store: AssessmentStore
) -> None:
    watched = create(store, "alice")
    # '²' is a digit to str.isdigit() but not a number to int().
    for since in ("%C2%B2", "-5", "1e3", "abc"):
        url = f"/ui/events?view=assessment&id={watched}&since={since}"
        with stream(live_server, url, ALICE) as events:
            assert first_position(events).id is not None, since


def test_a_stream_that_could_not_subscribe_leaves_nothing_open(
    live_server: LiveServer, store: AssessmentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    watched = create(store, "alice")
    feed = live_server.app.state.live_feed
    real_read = feed._read
    failures: list[int] = []

    def failing_once(query: Any) -> Any:
        if not failures:
            failures.append(1)
            raise StoreUnavailableError("PostgreSQL is unreachable (a test's outage)")
        return real_read(query)

    monkeypatch.setattr(feed, "_read", failing_once)
    url = f"/ui/events?view=assessment&id={watched}&since=0"
    with (
        httpx.Client(base_url=live_server.url, timeout=httpx.Timeout(30.0)) as client,
        client.stream("GET", url, headers=live_server.cookie(ALICE)) as response,
        pytest.raises(httpx.HTTPError),  # the stream breaks off
    ):
        for _ in response.iter_lines():
            pass
    assert failures == [1]
    with stream(live_server, url, ALICE) as events:  # the database is back
        first_position(events)
    nothing_open(live_server)
