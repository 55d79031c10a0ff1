"""Text search: pg_trgm and one GIN trigram index over id, server name and error.

``GET /v1/assessments?q=`` and ``search_assessments`` match a substring of
``assessment_id || U+001F || server_name || U+001F || error_message`` with ILIKE;
this index answers that for queries of three characters or more (see
assessment_store/db/text_search.py for why one expression index, not three).

pg_trgm is a trusted extension (PostgreSQL 13+): the database's owner may create it
without being a superuser. The index is built CONCURRENTLY, outside the migration's
transaction, so that a store already holding many rows keeps taking writes while it
builds (about half a minute at a million rows); a build that failed leaves an
invalid index, which running the upgrade again drops and builds anew.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_assessment_states_search"
# Spelled out (not imported): a migration stays what it was when it ran.
DOCUMENT = (
    "((((assessment_id || '\x1f') || COALESCE(server_name, '')) || '\x1f') "
    "|| COALESCE(error_message, ''))"
)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
        op.create_index(
            INDEX,
            "assessment_states",
            [sa.text(f"{DOCUMENT} gin_trgm_ops")],
            postgresql_using="gin",
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="assessment_states")
    # pg_trgm stays: it may have been there before 0004 (IF NOT EXISTS), or be used
    # by something else in this database.
