"""``rotate-keys``: every encrypted value (and every plaintext one written before
encryption was turned on) re-encrypted under the first key of ``ENCRYPTION_KEYS``,
in bounded batches, while everything keeps running.

Before writing anything, one scan lists the key ids in use: an id the ring does not
hold, or a held id whose key does not decrypt a sample of its values, stops the
rotation with DecryptionError and nothing written. Then each batch is one short
transaction: claim up to ``batch_size`` rows with FOR UPDATE SKIP LOCKED, decrypt
what they hold under the row lock, seal it under the current key and write it back
with a compare-and-set on the version read (``db.rekeying``): no version bump, no
audit row, no notification, as nothing about the assessment changed. Rows a
transition held locked are skipped and taken by a later pass; whatever is still not
under the current key at the end is reported (``remaining``), so running it again
finishes the job. Running it twice is harmless: the second run finds nothing to do.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, TypeVar

from sqlalchemy import Connection

from assessment_store import at_rest
from assessment_store.bootstrap import Runtime
from assessment_store.db import rekeying
from assessment_store.encryption import SETTING, TEXT_PREFIX, KeyRing
from assessment_store.errors import ConfigurationError, DecryptionError, InvalidInputError

DEFAULT_BATCH_SIZE: Final = 500
MAX_BATCH_SIZE: Final = 10_000
# Passes over the table: each takes what the previous one found locked.
MAX_PASSES: Final = 5
FIELDS: Final = {
    "options": at_rest.OPTIONS,
    "result": at_rest.RESULT,
    "error": at_rest.ERROR,
    "reason": at_rest.REASON,
}
# (phase, done, total): phase is "assessments" or "audit rows".
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class RotationReport:
    """What one rotation did: rows rewritten and what is still not under ``key_id``."""

    key_id: str
    assessments: int
    audit_rows: int
    remaining_assessments: int
    remaining_audit_rows: int

    @property
    def complete(self) -> bool:
        return self.remaining_assessments == 0 and self.remaining_audit_rows == 0


def rotate_keys(
    runtime: Runtime, *, batch_size: int = DEFAULT_BATCH_SIZE, progress: Progress | None = None
) -> RotationReport:
    """Re-encrypt every value not under the current key; see the module docstring."""
    keys = runtime.keys
    if keys is None:
        raise ConfigurationError(f"{SETTING} is not set: there is no key to rotate to")
    whole = isinstance(batch_size, int) and not isinstance(batch_size, bool)
    if not whole or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise InvalidInputError(
            "batchSize", f"must be a whole number from 1 to {MAX_BATCH_SIZE}", batch_size
        )
    check_keys(runtime, keys)
    params = rekeying.marks(keys.current_id, TEXT_PREFIX)
    total_rows, total_audit = runtime.read(lambda conn: rekeying.count_pending(conn, params))
    rows_done = audit_done = 0
    for attempt in range(MAX_PASSES):
        if attempt:
            time.sleep(0.1 * attempt)  # let the transitions that held rows finish
        rows_done += _one_pass(
            runtime,
            "assessments",
            partial(_assessment_batch, keys=keys, params=params, size=batch_size),
            "",
            (batch_size, rows_done, total_rows),
            progress,
        )
        audit_done += _one_pass(
            runtime,
            "audit rows",
            partial(_audit_batch, keys=keys, params=params, size=batch_size),
            0,
            (batch_size, audit_done, total_audit),
            progress,
        )
        left_rows, left_audit = runtime.read(lambda conn: rekeying.count_pending(conn, params))
        if left_rows == 0 and left_audit == 0:
            break
        # Values written meanwhile by a process still encrypting under an older key.
        total_rows = max(total_rows, rows_done + left_rows)
        total_audit = max(total_audit, audit_done + left_audit)
    return RotationReport(keys.current_id, rows_done, audit_done, left_rows, left_audit)


def check_keys(runtime: Runtime, keys: KeyRing) -> None:
    """Every key id in use is held and its key decrypts a sample of its values; else
    DecryptionError, before anything is written."""
    uses = runtime.read(lambda conn: rekeying.key_census(conn, TEXT_PREFIX, FIELDS))
    missing = [use for use in uses if use.key_id not in keys.ids]
    if missing:
        listed = ", ".join(f"{use.key_id!r} ({use.values} value(s))" for use in missing)
        raise DecryptionError(
            f"values are encrypted with key(s) {listed} that {SETTING} does not hold "
            f"(it holds {', '.join(repr(i) for i in keys.ids)}); add them back to rotate "
            "those values; nothing was changed"
        )
    for use in uses:
        if use.field in (at_rest.OPTIONS, at_rest.RESULT):
            at_rest.open_json(keys, use.assessment_id, use.field, use.value)
        else:
            at_rest.open_text(keys, use.assessment_id, use.field, use.value)


Cursor = TypeVar("Cursor", str, int)
# One batch: (rows claimed, rows rewritten, the cursor after them).
Batch = Callable[[Cursor, Connection], tuple[int, int, Cursor]]


def _one_pass(
    runtime: Runtime,
    phase: str,
    batch: Batch[Cursor],
    start: Cursor,
    counts: tuple[int, int, int],
    progress: Progress | None,
) -> int:
    """Batches from ``start`` until one claims fewer than ``batch_size`` rows (each its
    own transaction); how many rows were rewritten. ``counts``: (batch size, done
    before this pass, total)."""
    batch_size, done, total = counts
    after = start
    rewritten = 0
    while True:
        claimed, written, after = runtime.transact(partial(batch, after))
        rewritten += written
        if progress is not None and claimed:
            progress(phase, done + rewritten, max(total, done + rewritten))
        if claimed < batch_size:
            return rewritten


def _assessment_batch(
    cursor: str, conn: Connection, *, keys: KeyRing, params: Mapping[str, str], size: int
) -> tuple[int, int, str]:
    claimed = rekeying.claim_assessments(conn, params, cursor, size)
    rows = [resealed(keys, row) for row in claimed]
    last = claimed[-1]["assessment_id"] if claimed else cursor
    return len(claimed), rekeying.rewrite_assessments(conn, rows), last


def _audit_batch(
    cursor: int, conn: Connection, *, keys: KeyRing, params: Mapping[str, str], size: int
) -> tuple[int, int, int]:
    claimed = rekeying.claim_audit_rows(conn, params, cursor, size)
    reasons = {
        row["id"]: reseal_text(keys, row["assessment_id"], at_rest.REASON, row["change_reason"])
        for row in claimed
    }
    last = int(claimed[-1]["id"]) if claimed else cursor
    return len(claimed), rekeying.rewrite_audit_reasons(conn, reasons), last


def resealed(keys: KeyRing, row: at_rest.Row) -> dict[str, Any]:
    """The row's encrypted columns, each under the current key (a value already under
    it is kept as it is; a plaintext one is sealed)."""
    aid = row["assessment_id"]
    request = dict(row["request_data"])
    if "options" in request:
        request["options"] = reseal_json(keys, aid, at_rest.OPTIONS, request["options"])
    result = row["result_data"]
    error = row["error_message"]
    return {
        "assessment_id": aid,
        "version": row["version"],
        "request_data": request,
        "result_data": None if result is None else reseal_json(keys, aid, at_rest.RESULT, result),
        "error_message": None if error is None else reseal_text(keys, aid, at_rest.ERROR, error),
    }


def reseal_json(keys: KeyRing, assessment_id: str, field: str, value: Any) -> Any:
    if at_rest.json_key_id(value) == keys.current_id:
        return value
    plaintext = at_rest.open_json(keys, assessment_id, field, value)
    return at_rest.seal_json(keys, assessment_id, field, plaintext)


def reseal_text(keys: KeyRing, assessment_id: str, field: str, value: str) -> str:
    if at_rest.text_key_id(value) == keys.current_id:
        return value
    plaintext = at_rest.open_text(keys, assessment_id, field, value)
    return at_rest.seal_text(keys, assessment_id, field, plaintext)
