"""WAL positions: how far the primary has written and the replica has replayed.

Read-your-writes (``assessment_store.consistency``) compares the two: a caller's
replica read may be served by the replica once it has replayed the primary's WAL up
to a position taken after the caller's last write.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

# The insert position, not the write position: a step committed with
# synchronous_commit off (db/prepared) has its commit record inserted when the
# commit returns, but perhaps not yet written. Never behind the caller's commit.
_INSERT_LSN = text(
    "SELECT pg_current_wal_insert_lsn()::text, current_setting('wal_block_size')::int, "
    "pg_size_bytes(current_setting('wal_segment_size'))"
)
# Page headers (64-bit builds): the first page of a segment has the long one.
SHORT_PAGE_HEADER = 24
LONG_PAGE_HEADER = 40
# NULL on a server that is not a streaming standby (nothing to compare).
_REPLAY_LSN = text("SELECT pg_last_wal_replay_lsn()::text")


def parse_lsn(lsn: str) -> int:
    """``'16/B374D848'`` as the byte position it names."""
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def insert_lsn(conn: Connection) -> int:
    """The primary's current WAL insert position: past every commit that has returned.

    With nothing yet inserted on the current page (the last record ended on a page
    boundary; always so after a segment switch), PostgreSQL reports the position
    after that page's header, which a standby never reports having replayed until
    more WAL comes: the boundary itself is returned instead."""
    lsn, block, segment = conn.execute(_INSERT_LSN).one()
    position = parse_lsn(str(lsn))
    if position % int(segment) == LONG_PAGE_HEADER:
        return position - LONG_PAGE_HEADER
    if position % int(block) == SHORT_PAGE_HEADER:
        return position - SHORT_PAGE_HEADER
    return position


def replay_lsn(conn: Connection) -> int | None:
    """How far this standby has replayed the primary's WAL; None on a server that is
    not a standby (a primary, a logical copy)."""
    replayed = conn.execute(_REPLAY_LSN).scalar_one()
    return None if replayed is None else parse_lsn(str(replayed))
