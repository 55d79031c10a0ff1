"""Initial schema: assessment_states, assessment_state_audit, assessment_leases.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = ("pending", "processing", "completed", "failed", "cancelled")
# create_type=False: the type is created once, explicitly, below.
state_enum = postgresql.ENUM(*STATES, name="assessment_state", create_type=False)
NOW = sa.text("now()")


def upgrade() -> None:
    postgresql.ENUM(*STATES, name="assessment_state").create(op.get_bind())

    op.create_table(
        "assessment_states",
        sa.Column("assessment_id", sa.Text(), nullable=False),
        sa.Column("state", state_enum, nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("request_data", postgresql.JSONB(), nullable=False),
        sa.Column("result_data", postgresql.JSONB(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("progress", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("priority", sa.SmallInteger(), server_default=sa.text("5"), nullable=False),
        sa.Column("assessment_type", sa.Text(), nullable=False),
        sa.Column("server_name", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("retry_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("worker_id", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("assessment_id", name="pk_assessment_states"),
        sa.CheckConstraint(
            "char_length(assessment_id) BETWEEN 1 AND 255",
            name=op.f("ck_assessment_states_assessment_id_length"),
        ),
        sa.CheckConstraint("version >= 1", name=op.f("ck_assessment_states_version_positive")),
        sa.CheckConstraint(
            "progress BETWEEN 0 AND 100", name=op.f("ck_assessment_states_progress_range")
        ),
        sa.CheckConstraint(
            "priority BETWEEN 1 AND 10", name=op.f("ck_assessment_states_priority_range")
        ),
        sa.CheckConstraint(
            "retry_count >= 0", name=op.f("ck_assessment_states_retry_count_non_negative")
        ),
        sa.CheckConstraint(
            "jsonb_typeof(request_data) = 'object'",
            name=op.f("ck_assessment_states_request_data_object"),
        ),
        sa.CheckConstraint(
            "(completed_at IS NOT NULL) = (state IN ('completed', 'failed', 'cancelled'))",
            name=op.f("ck_assessment_states_completed_at_iff_finished"),
        ),
        sa.CheckConstraint(
            "next_retry_at IS NULL OR state = 'failed'",
            name=op.f("ck_assessment_states_next_retry_only_when_failed"),
        ),
        sa.CheckConstraint(
            "started_at IS NOT NULL OR state NOT IN ('processing', 'completed')",
            name=op.f("ck_assessment_states_started_at_when_run"),
        ),
    )
    op.create_index(
        "ix_assessment_states_state_created_at", "assessment_states", ["state", "created_at"]
    )
    op.create_index(
        "ix_assessment_states_priority_created_at",
        "assessment_states",
        ["priority", "created_at"],
    )
    op.create_index(
        "ix_assessment_states_created_at_assessment_id",
        "assessment_states",
        ["created_at", "assessment_id"],
    )
    op.create_index(
        "ix_assessment_states_created_by_created_at",
        "assessment_states",
        ["created_by", "created_at"],
    )
    op.create_index(
        "ix_assessment_states_assessment_type", "assessment_states", ["assessment_type"]
    )
    op.create_index("ix_assessment_states_server_name", "assessment_states", ["server_name"])
    op.create_index(
        "ix_assessment_states_next_retry_at",
        "assessment_states",
        ["next_retry_at"],
        postgresql_where=sa.text("next_retry_at IS NOT NULL"),
    )
    op.create_index(
        "ix_assessment_states_pending_dispatch_order",
        "assessment_states",
        [sa.text("priority DESC"), "updated_at"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.create_index(
        "ix_assessment_states_finished_completed_at",
        "assessment_states",
        ["completed_at"],
        postgresql_where=sa.text("completed_at IS NOT NULL"),
    )

    op.create_table(
        "assessment_state_audit",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("assessment_id", sa.Text(), nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("old_state", state_enum, nullable=True),
        sa.Column("new_state", state_enum, nullable=False),
        sa.Column("version_from", sa.Integer(), nullable=True),
        sa.Column("version_to", sa.Integer(), nullable=False),
        sa.Column("changed_by", sa.Text(), nullable=False),
        sa.Column("change_reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_assessment_state_audit"),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessment_states.assessment_id"],
            name="fk_assessment_state_audit_assessment_id_assessment_states",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "assessment_id",
            "version_to",
            name="uq_assessment_state_audit_assessment_id_version_to",
        ),
        sa.CheckConstraint(
            "version_to = COALESCE(version_from, 0) + 1",
            name=op.f("ck_assessment_state_audit_version_step_is_one"),
        ),
        sa.CheckConstraint(
            "(version_from IS NULL) = (old_state IS NULL)",
            name=op.f("ck_assessment_state_audit_first_row_has_no_old_state"),
        ),
        sa.CheckConstraint(
            "old_state IS NOT NULL OR new_state = 'pending'",
            name=op.f("ck_assessment_state_audit_chain_starts_pending"),
        ),
    )

    op.create_table(
        "assessment_leases",
        sa.Column("assessment_id", sa.Text(), nullable=False),
        sa.Column("worker_id", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispatch_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("assessment_id", name="pk_assessment_leases"),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessment_states.assessment_id"],
            name="fk_assessment_leases_assessment_id_assessment_states",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "dispatch_count >= 0", name=op.f("ck_assessment_leases_dispatch_count_non_negative")
        ),
    )
    op.create_index(
        "ix_assessment_leases_lease_expires_at",
        "assessment_leases",
        ["lease_expires_at"],
        postgresql_where=sa.text("lease_expires_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("assessment_leases")
    op.drop_table("assessment_state_audit")
    op.drop_table("assessment_states")
    postgresql.ENUM(name="assessment_state").drop(op.get_bind())
