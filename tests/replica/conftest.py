"""A real streaming replica for the read-routing tests (see servers.py): started once
per run, in a few seconds, and always stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from assessment_store.db.migrate import upgrade
from tests.replica.servers import ServerError, StreamingPair, streaming_pair


@pytest.fixture(scope="session")
def pair() -> Iterator[StreamingPair]:
    try:
        with streaming_pair("assessment_store", upgrade) as started:
            yield started
    except ServerError as exc:
        pytest.fail(f"could not start the streaming pair: {exc}", pytrace=False)


@pytest.fixture
def paused(pair: StreamingPair) -> Iterator[StreamingPair]:
    """Replay paused on the replica for one test: what the primary commits meanwhile
    is streamed but not visible there. Resumed (and caught up) afterwards."""
    pair.pause_replay()
    try:
        yield pair
    finally:
        pair.resume_replay()
        pair.wait_until_replayed()
