"""Keyset cursors round-trip and refuse anything not produced by the service."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from assessment_store.errors import InvalidCursorError
from assessment_store.pagination import decode_cursor, encode_cursor


def test_a_cursor_round_trips_its_position() -> None:
    at = datetime(2026, 11, 22, 6, 0, 1, 123456, tzinfo=UTC)
    assert decode_cursor(encode_cursor(at, "a:b-c")) == (at, "a:b-c")


@pytest.mark.parametrize(
    "garbage", ["", "!!!", "bm90IGpzb24", "WzEsMl0", "WyIyMDI2LTAxLTAxIiwiYSJd"]
)
def test_a_foreign_cursor_is_refused_naming_the_field(garbage: str) -> None:
    with pytest.raises(InvalidCursorError, match="cursor"):
        decode_cursor(garbage)
