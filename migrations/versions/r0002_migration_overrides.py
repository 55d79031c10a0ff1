"""Migration overrides: the cut-over settings an operator changes at run time.

`assessment-store migration set --percentage N` writes a row here; every running
process re-reads the table within seconds, so a cut-over step or a rollback needs no
restart. A setting without a row keeps its configured default (MIGRATION_*).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "migration_overrides",
        sa.Column("setting", sa.Text(), nullable=False),
        sa.Column("value", postgresql.JSONB(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.CheckConstraint(
            "setting IN ('percentage', 'legacy_fallback', 'enable_store')",
            name="ck_migration_overrides_known_setting",
        ),
        sa.PrimaryKeyConstraint("setting", name="pk_migration_overrides"),
    )


def downgrade() -> None:
    op.drop_table("migration_overrides")
