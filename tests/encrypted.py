"""Shared by the encryption tests: keys, settings with them, and the raw columns read
with plain SQL (never through the store)."""

from __future__ import annotations

import base64
import os

from sqlalchemy import Engine, text

from assessment_store.config import Settings, load_settings

K1 = base64.b64encode(os.urandom(32)).decode()
K2 = base64.b64encode(os.urandom(16)).decode()
K3 = base64.b64encode(os.urandom(24)).decode()
# Plaintexts that must never be found in a raw column.
OPTION_SECRET = "options-secret.internal"
RESULT_SECRET = "result-secret-finding"
ERROR_SECRET = "error-secret-stacktrace"


def with_keys(settings: Settings, keys: str | None) -> Settings:
    """``settings`` with ENCRYPTION_KEYS set to ``keys`` (None: off)."""
    return load_settings(**{**settings.model_dump(), "encryption_keys": keys})


def raw_values(engine: Engine) -> str:
    """The raw text of every encrypted-at-rest column and of every audit reason."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT request_data::text, coalesce(result_data::text, ''), "
                "coalesce(error_message, '') FROM assessment_states ORDER BY assessment_id"
            )
        ).all()
        reasons = conn.execute(text("SELECT change_reason FROM assessment_state_audit")).scalars()
        return "\n".join([*("\n".join(row) for row in rows), *reasons])


def raw_snapshot(engine: Engine) -> list[tuple[object, ...]]:
    """Every column of every row and audit row: equal before and after means nothing
    was written."""
    with engine.connect() as conn:
        states = conn.execute(
            text(
                "SELECT s.*, l.* FROM assessment_states AS s "
                "LEFT JOIN assessment_leases AS l USING (assessment_id) ORDER BY s.assessment_id"
            )
        ).all()
        audit = conn.execute(text("SELECT * FROM assessment_state_audit ORDER BY id")).all()
    return [tuple(row) for row in states] + [tuple(row) for row in audit]


def key_ids_in_use(engine: Engine) -> set[str]:
    """The key ids of the encrypted values (plaintext values count as "plain")."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                """
                SELECT coalesce(request_data -> 'options' ->> 'kid', 'plain') FROM assessment_states
                UNION SELECT coalesce(result_data ->> 'kid', 'plain') FROM assessment_states
                    WHERE result_data IS NOT NULL
                UNION SELECT CASE WHEN error_message LIKE 'enc:v1:%'
                    THEN split_part(error_message, ':', 3) ELSE 'plain' END
                    FROM assessment_states WHERE error_message IS NOT NULL
                UNION SELECT CASE WHEN change_reason LIKE 'enc:v1:%'
                    THEN split_part(change_reason, ':', 3) ELSE 'plain' END
                    FROM assessment_state_audit WHERE event = 'fail'
                """
            )
        ).scalars()
        return set(rows)
