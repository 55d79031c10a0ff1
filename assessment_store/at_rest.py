"""Which values are encrypted at rest, and the one place each is sealed and opened.

With ``ENCRYPTION_KEYS`` set (a :class:`KeyRing`), these values never reach
PostgreSQL in plaintext:

- ``request_data.options``: only that key of the request is replaced by its JSON
  envelope; the plain fields (type, server, source, priority, ...) stay readable, and
  the filters work on their own columns anyway;
- ``result_data``: the whole object becomes a JSON envelope (still a JSON object);
- ``error_message``: a text envelope;
- the audit ``change_reason`` of a failure, which repeats the error message.

Each is bound to its place (the assessment id and the field) by the AES-GCM
associated data: a value copied to another assessment or field does not decrypt.

Sealing happens where rows are written (``creation``, ``changes.transition``,
import); opening where rows are read (:func:`open_row` before any row becomes a
model, :func:`open_audit` for audit rows). Opening works with encryption off too: a
plaintext value (written before encryption was turned on) is returned as it is, and
an encrypted value met without the ring is a DecryptionError, never returned as if
it were data. With nothing encrypted in a row, opening costs three membership tests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Final

from sqlalchemy import RowMapping

from assessment_store.db.transitions import ImportedAudit, NewAssessment, Step
from assessment_store.encryption import (
    JSON_MARKER,
    TEXT_PREFIX,
    KeyRing,
    json_envelope,
    not_held,
    parse_json_envelope,
    parse_text_envelope,
    text_envelope,
)
from assessment_store.states import AssessmentEvent

OPTIONS: Final = "request_data.options"
RESULT: Final = "result_data"
ERROR: Final = "error_message"
REASON: Final = "change_reason"
# A row as the repository returns it (prepared statements give dicts).
Row = Mapping[str, Any] | RowMapping
# Audit events whose change_reason carries the error message.
SEALED_REASON_EVENTS: Final = frozenset({AssessmentEvent.FAIL.value})


def _place(assessment_id: str, field: str) -> bytes:
    return f"{assessment_id}\x00{field}".encode()


def _what(assessment_id: str, field: str) -> str:
    return f"assessment {assessment_id!r} {field}"


# -- single values -------------------------------------------------------------------


def seal_json(keys: KeyRing, assessment_id: str, field: str, value: Any) -> dict[str, str]:
    """The JSON envelope of ``value`` under the current key."""
    plaintext = json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    return json_envelope(*keys.encrypt(plaintext, _place(assessment_id, field)))


def seal_text(keys: KeyRing, assessment_id: str, field: str, value: str) -> str:
    """The text envelope of ``value`` under the current key."""
    return text_envelope(*keys.encrypt(value.encode(), _place(assessment_id, field)))


def json_key_id(value: object) -> str | None:
    """The key id of a JSON envelope; None for plaintext."""
    if not (isinstance(value, dict) and JSON_MARKER in value):
        return None
    parsed = parse_json_envelope(value, "value")
    return None if parsed is None else parsed[0]


def text_key_id(value: str | None) -> str | None:
    """The key id of a text envelope; None for plaintext (or None)."""
    if value is None or not value.startswith(TEXT_PREFIX):
        return None
    parsed = parse_text_envelope(value, "value")
    return None if parsed is None else parsed[0]


def open_json(keys: KeyRing | None, assessment_id: str, field: str, value: Any) -> Any:
    """``value`` itself when plaintext, else its decrypted content."""
    if not (isinstance(value, dict) and JSON_MARKER in value):
        return value
    what = _what(assessment_id, field)
    parsed = parse_json_envelope(value, what)
    if parsed is None:
        return value
    if keys is None:
        raise not_held(parsed[0], what)
    return json.loads(keys.decrypt(*parsed, _place(assessment_id, field), what=what))


def open_text(keys: KeyRing | None, assessment_id: str, field: str, value: str | None) -> Any:
    """``value`` itself when plaintext (or None), else its decrypted text."""
    if value is None or not value.startswith(TEXT_PREFIX):
        return value
    what = _what(assessment_id, field)
    parsed = parse_text_envelope(value, what)
    if parsed is None:
        return value
    if keys is None:
        raise not_held(parsed[0], what)
    return keys.decrypt(*parsed, _place(assessment_id, field), what=what).decode()


# -- rows ----------------------------------------------------------------------------


def seal_request(
    keys: KeyRing, assessment_id: str, request_data: Mapping[str, Any]
) -> dict[str, Any]:
    """The stored request with its ``options`` sealed (the other fields stay plain)."""
    sealed = dict(request_data)
    if "options" in sealed:
        sealed["options"] = seal_json(keys, assessment_id, OPTIONS, sealed["options"])
    return sealed


def open_request(
    keys: KeyRing | None, assessment_id: str, request_data: Mapping[str, Any]
) -> Mapping[str, Any]:
    """The stored request with its ``options`` in plaintext."""
    options = request_data.get("options")
    if not (isinstance(options, dict) and JSON_MARKER in options):
        return request_data
    return {**request_data, "options": open_json(keys, assessment_id, OPTIONS, options)}


def open_row(keys: KeyRing | None, row: Row) -> Row:
    """An assessment row with every encrypted value in plaintext: the row itself when
    nothing in it is encrypted. DecryptionError if a value cannot be decrypted."""
    request = row["request_data"]
    options = request.get("options") if isinstance(request, dict) else None
    result = row["result_data"]
    error = row["error_message"]
    if not (
        (isinstance(options, dict) and JSON_MARKER in options)
        or (isinstance(result, dict) and JSON_MARKER in result)
        or (error is not None and error.startswith(TEXT_PREFIX))
    ):
        return row
    assessment_id = row["assessment_id"]
    opened = dict(row)
    opened["request_data"] = open_request(keys, assessment_id, request)
    opened["result_data"] = open_json(keys, assessment_id, RESULT, result)
    opened["error_message"] = open_text(keys, assessment_id, ERROR, error)
    return opened


def open_audit(keys: KeyRing | None, row: Row) -> Row:
    """An audit row with its change_reason in plaintext."""
    reason = row["change_reason"]
    if not reason.startswith(TEXT_PREFIX):
        return row
    return {**row, "change_reason": open_text(keys, row["assessment_id"], REASON, reason)}


def seal_new(keys: KeyRing, rows: Sequence[NewAssessment]) -> list[NewAssessment]:
    """New rows as they are stored: each request's options sealed."""
    return [
        replace(row, request_data=seal_request(keys, row.assessment_id, row.request_data))
        for row in rows
    ]


def seal_step(keys: KeyRing, event: AssessmentEvent, step: Step) -> Step:
    """A transition step as it is stored: its result and error sealed, and, for a
    failure, its audit reason (which repeats the error)."""
    values = dict(step.values)
    aid = step.assessment_id
    if values.get("result_data") is not None:
        values["result_data"] = seal_json(keys, aid, RESULT, values["result_data"])
    if values.get("error_message") is not None:
        values["error_message"] = seal_text(keys, aid, ERROR, str(values["error_message"]))
    reason = step.reason
    if event.value in SEALED_REASON_EVENTS:
        reason = seal_text(keys, aid, REASON, reason)
    return replace(step, values=values, reason=reason)


def seal_imported(
    keys: KeyRing, rows: Sequence[Mapping[str, Any]], audit: Sequence[ImportedAudit]
) -> tuple[list[dict[str, Any]], list[ImportedAudit]]:
    """Imported rows and audit rows as they are stored."""
    sealed_rows = []
    for row in rows:
        aid = row["assessment_id"]
        sealed = dict(row)
        sealed["request_data"] = seal_request(keys, aid, row["request_data"])
        if row["result_data"] is not None:
            sealed["result_data"] = seal_json(keys, aid, RESULT, row["result_data"])
        if row["error_message"] is not None:
            sealed["error_message"] = seal_text(keys, aid, ERROR, row["error_message"])
        sealed_rows.append(sealed)
    sealed_audit = [
        replace(
            entry, change_reason=seal_text(keys, entry.assessment_id, REASON, entry.change_reason)
        )
        if entry.event in SEALED_REASON_EVENTS
        else entry
        for entry in audit
    ]
    return sealed_rows, sealed_audit
