"""SQL of ``rotate-keys``: which values are not under the current key, and rewriting
them in place (see ``rotation``).

A rewrite is not a change of the assessment: it sets only the encrypted columns (the
same plaintext under another key), never the version, ``updated_at`` or an audit row,
and sends no notification. Its rows are claimed with FOR UPDATE SKIP LOCKED, so a
transition running meanwhile is never waited on for long and never overtaken: it
either ran before the claim (and the rewrite re-reads its values) or waits for the
rewrite's short transaction and then applies to the rewritten row, whose version did
not move. The rewrite itself is a compare-and-set on the version it read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, RowMapping, text

# The current key's marks: :marker is {"$enc": "v1", "kid": <current>} (jsonb), :prefix
# is 'enc:v1:<current>:'. A JSON value is under the current key when it is exactly an
# envelope (those three keys) with that kid.
_ENVELOPE_KEYS = "CAST(ARRAY['$enc', 'kid', 'data'] AS text[])"


def _under_current(column: str) -> str:
    return f"({column} @> CAST(:marker AS jsonb) AND ({column} - {_ENVELOPE_KEYS}) = '{{}}'::jsonb)"


NEEDS_ROTATION = f"""(
    (request_data ? 'options' AND NOT {_under_current("(request_data -> 'options')")})
    OR (result_data IS NOT NULL AND NOT {_under_current("result_data")})
    OR (error_message IS NOT NULL AND NOT starts_with(error_message, :prefix))
)"""
# Audit rows whose reason is sealed (a failure's, or any already encrypted).
AUDIT_NEEDS_ROTATION = """(
    (event = 'fail' OR starts_with(change_reason, :any_prefix))
    AND NOT starts_with(change_reason, :prefix)
)"""


@dataclass(frozen=True)
class KeyUse:
    """How many values one key id encrypts, and one of them to test the key on."""

    key_id: str
    values: int
    assessment_id: str
    field: str
    value: Any


def marks(current_id: str, text_prefix: str) -> dict[str, str]:
    """The bind parameters of the predicates above for the current key."""
    return {
        "marker": json.dumps({"$enc": "v1", "kid": current_id}),
        "prefix": f"{text_prefix}{current_id}:",
        "any_prefix": text_prefix,
    }


def key_census(conn: Connection, text_prefix: str, fields: Mapping[str, str]) -> list[KeyUse]:
    """Every key id that encrypts some value, with a count and a sample (a full scan:
    run once per rotation). ``fields`` names the places (options, result, error,
    reason) as ``at_rest`` does, for the samples' associated data."""
    rows = conn.execute(
        text(
            """
            WITH v AS (
                SELECT request_data -> 'options' ->> 'kid' AS kid, assessment_id,
                       CAST(:options AS text) AS field, (request_data -> 'options')::text AS value
                FROM assessment_states WHERE request_data -> 'options' ? '$enc'
                UNION ALL
                SELECT result_data ->> 'kid', assessment_id, CAST(:result AS text),
                       result_data::text
                FROM assessment_states WHERE result_data ? '$enc'
                UNION ALL
                SELECT split_part(error_message, ':', 3), assessment_id, CAST(:error AS text),
                       error_message
                FROM assessment_states WHERE starts_with(error_message, :any_prefix)
                UNION ALL
                SELECT split_part(change_reason, ':', 3), assessment_id, CAST(:reason AS text),
                       change_reason
                FROM assessment_state_audit WHERE starts_with(change_reason, :any_prefix)
            )
            SELECT DISTINCT ON (kid) kid, count(*) OVER (PARTITION BY kid) AS n,
                   assessment_id, field, value
            FROM v ORDER BY kid, assessment_id
            """
        ),
        {**fields, "any_prefix": text_prefix},
    ).mappings()
    uses = []
    for row in rows:
        is_json = row["field"] in (fields["options"], fields["result"])
        value = json.loads(row["value"]) if is_json else row["value"]
        uses.append(
            KeyUse(str(row["kid"]), int(row["n"]), row["assessment_id"], row["field"], value)
        )
    return uses


def count_pending(conn: Connection, params: Mapping[str, str]) -> tuple[int, int]:
    """(assessments, audit rows) holding a value not under the current key."""
    row = conn.execute(
        text(
            f"""
            SELECT (SELECT count(*) FROM assessment_states WHERE {NEEDS_ROTATION}),
                   (SELECT count(*) FROM assessment_state_audit WHERE {AUDIT_NEEDS_ROTATION})
            """
        ),
        dict(params),
    ).one()
    return int(row[0]), int(row[1])


def claim_assessments(
    conn: Connection, params: Mapping[str, str], after: str, limit: int
) -> list[RowMapping]:
    """Lock up to ``limit`` assessments after ``after`` (by id) that hold a value not
    under the current key; rows locked by a transition are skipped (a later pass
    takes them)."""
    result = conn.execute(
        text(
            f"""
            SELECT assessment_id, version, request_data, result_data, error_message
            FROM assessment_states
            WHERE assessment_id > :after AND {NEEDS_ROTATION}
            ORDER BY assessment_id
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
            """
        ),
        {**params, "after": after, "limit": limit},
    )
    return list(result.mappings())


def rewrite_assessments(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Set each row's encrypted columns if it is still at the version read; how many
    were. Nothing else of the row changes (no version, no updated_at, no audit)."""
    if not rows:
        return 0
    result = conn.execute(
        text(
            """
            UPDATE assessment_states AS s
            SET request_data = i.request_data, result_data = i.result_data,
                error_message = i.error_message
            FROM unnest(CAST(:ids AS text[]), CAST(:versions AS integer[]),
                        CAST(:requests AS jsonb[]), CAST(:results AS jsonb[]),
                        CAST(:errors AS text[]))
                 AS i(assessment_id, version, request_data, result_data, error_message)
            WHERE s.assessment_id = i.assessment_id AND s.version = i.version
            RETURNING s.assessment_id
            """
        ),
        {
            "ids": [row["assessment_id"] for row in rows],
            "versions": [row["version"] for row in rows],
            "requests": [json.dumps(row["request_data"]) for row in rows],
            "results": [_json_or_none(row["result_data"]) for row in rows],
            "errors": [row["error_message"] for row in rows],
        },
    )
    return len(result.all())


def _json_or_none(value: object) -> str | None:
    return None if value is None else json.dumps(value)


def claim_audit_rows(
    conn: Connection, params: Mapping[str, str], after: int, limit: int
) -> list[RowMapping]:
    """Lock up to ``limit`` audit rows after id ``after`` whose reason is not sealed
    under the current key."""
    result = conn.execute(
        text(
            f"""
            SELECT id, assessment_id, change_reason FROM assessment_state_audit
            WHERE id > :after AND {AUDIT_NEEDS_ROTATION}
            ORDER BY id
            LIMIT :limit
            FOR UPDATE SKIP LOCKED
            """
        ),
        {**params, "after": after, "limit": limit},
    )
    return list(result.mappings())


def rewrite_audit_reasons(conn: Connection, reasons: Mapping[int, str]) -> int:
    """Set the reasons of these audit rows (by id): the same text, re-encrypted."""
    if not reasons:
        return 0
    result = conn.execute(
        text(
            """
            UPDATE assessment_state_audit AS a SET change_reason = i.reason
            FROM unnest(CAST(:ids AS bigint[]), CAST(:reasons AS text[])) AS i(id, reason)
            WHERE a.id = i.id
            RETURNING a.id
            """
        ),
        {"ids": list(reasons), "reasons": list(reasons.values())},
    )
    return len(result.all())
