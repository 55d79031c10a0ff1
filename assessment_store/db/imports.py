"""SQL for ``import``: assessments and audit rows inserted exactly as exported."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from sqlalchemy import Connection, text

IMPORTED_COLUMNS: Final = (
    "assessment_id",
    "state",
    "version",
    "request_data",
    "result_data",
    "error_message",
    "progress",
    "message",
    "priority",
    "assessment_type",
    "server_name",
    "source",
    "created_by",
    "retry_count",
    "next_retry_at",
    "worker_id",
    "created_at",
    "updated_at",
    "started_at",
    "completed_at",
)


def insert_imported(
    conn: Connection,
    assessments: Sequence[Mapping[str, Any]],
    audit_rows: Sequence[Mapping[str, Any]],
) -> None:
    """Insert assessments exactly as exported (state, version, timestamps) and their
    audit rows. Running ones get an already-expired lease, so rescue retries them."""
    if not assessments:
        return
    conn.execute(
        text(
            f"INSERT INTO assessment_states ({', '.join(IMPORTED_COLUMNS)}) VALUES ("
            + ", ".join(
                f"CAST(:{c} AS jsonb)"
                if c in ("request_data", "result_data")
                else f"CAST(:{c} AS assessment_state)"
                if c == "state"
                else f":{c}"
                for c in IMPORTED_COLUMNS
            )
            + ")"
        ),
        [
            {
                **{c: row[c] for c in IMPORTED_COLUMNS},
                "request_data": json.dumps(row["request_data"]),
                "result_data": None
                if row["result_data"] is None
                else json.dumps(row["result_data"]),
            }
            for row in assessments
        ],
    )
    conn.execute(
        text(
            "INSERT INTO assessment_state_audit (assessment_id, event, old_state, new_state, "
            "version_from, version_to, changed_by, change_reason, created_at) VALUES "
            "(:assessment_id, :event, CAST(:old_state AS assessment_state), "
            "CAST(:new_state AS assessment_state), :version_from, :version_to, :changed_by, "
            ":change_reason, :created_at)"
        ),
        list(audit_rows),
    )
    running = [row["assessment_id"] for row in assessments if row["state"] == "processing"]
    if running:
        conn.execute(
            text(
                "INSERT INTO assessment_leases (assessment_id, worker_id, lease_expires_at) "
                "SELECT id, 'imported', now() FROM unnest(CAST(:ids AS text[])) AS id "
                "ON CONFLICT (assessment_id) DO NOTHING"
            ),
            {"ids": running},
        )
