"""Migration legacy reports: what each process's in-memory legacy backend holds.

The legacy side keeps its assessments in the memory of the process that created them,
so `assessment-store migration status`, run elsewhere, learns of them only from this
table: each running facade that has held legacy work upserts its counts every few
seconds and deletes its row when it closes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "migration_legacy_reports",
        sa.Column("reporter", sa.Text(), nullable=False),
        sa.Column("backend", sa.Text(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("in_flight", sa.Integer(), nullable=False),
        sa.Column("by_state", postgresql.JSONB(), nullable=False),
        sa.Column(
            "reported_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.CheckConstraint(
            "held >= 0 AND in_flight >= 0 AND in_flight <= held",
            name="ck_migration_legacy_reports_counts_valid",
        ),
        sa.PrimaryKeyConstraint("reporter", name="pk_migration_legacy_reports"),
    )


def downgrade() -> None:
    op.drop_table("migration_legacy_reports")
