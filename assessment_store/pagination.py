"""Opaque keyset cursors: the (created_at, assessment_id) of the last row of a page."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from assessment_store.errors import InvalidCursorError
from assessment_store.inputs import text_problem


def encode_cursor(created_at: datetime, assessment_id: str) -> str:
    """A URL-safe token for the position after this row."""
    raw = json.dumps([created_at.isoformat(), assessment_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor stands for; InvalidCursorError when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created_at_text, assessment_id = json.loads(base64.urlsafe_b64decode(padded))
        created_at = datetime.fromisoformat(created_at_text)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursorError() from None
    if created_at.tzinfo is None or not isinstance(assessment_id, str):
        raise InvalidCursorError()
    if text_problem(assessment_id):
        raise InvalidCursorError()
    return created_at, assessment_id
