"""SQLAlchemy table definitions: the schema Alembic's migrations must produce.

The migrations in ``migrations/versions`` create these tables; ``alembic check`` and a
test keep the two in step. Constraint names are stable so the repository can map a
violated constraint to a domain error.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from assessment_store.db.text_search import SEARCH_DOCUMENT, SEARCH_INDEX
from assessment_store.states import AssessmentState

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

assessment_state_enum = Enum(
    AssessmentState,
    name="assessment_state",
    values_callable=lambda states: [state.value for state in states],
    metadata=metadata,
)

NOW = text("now()")

assessment_states = Table(
    "assessment_states",
    metadata,
    Column("assessment_id", Text, primary_key=True),
    Column("state", assessment_state_enum, nullable=False),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("request_data", JSONB, nullable=False),
    Column("result_data", JSONB),
    Column("error_message", Text),
    Column("progress", SmallInteger, nullable=False, server_default=text("0")),
    Column("message", Text),
    Column("priority", SmallInteger, nullable=False, server_default=text("5")),
    # Copies of request fields that lists filter on, so filters use plain indexes.
    Column("assessment_type", Text, nullable=False),
    Column("server_name", Text),
    Column("source", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    Column("retry_count", Integer, nullable=False, server_default=text("0")),
    Column("next_retry_at", DateTime(timezone=True)),
    Column("worker_id", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    Column("started_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    CheckConstraint("char_length(assessment_id) BETWEEN 1 AND 255", name="assessment_id_length"),
    CheckConstraint("version >= 1", name="version_positive"),
    CheckConstraint("progress BETWEEN 0 AND 100", name="progress_range"),
    CheckConstraint("priority BETWEEN 1 AND 10", name="priority_range"),
    CheckConstraint("retry_count >= 0", name="retry_count_non_negative"),
    CheckConstraint("jsonb_typeof(request_data) = 'object'", name="request_data_object"),
    CheckConstraint(
        "(completed_at IS NOT NULL) = (state IN ('completed', 'failed', 'cancelled'))",
        name="completed_at_iff_finished",
    ),
    CheckConstraint(
        "next_retry_at IS NULL OR state = 'failed'", name="next_retry_only_when_failed"
    ),
    CheckConstraint(
        "started_at IS NOT NULL OR state NOT IN ('processing', 'completed')",
        name="started_at_when_run",
    ),
    Index("ix_assessment_states_state_created_at", "state", "created_at"),
    Index("ix_assessment_states_priority_created_at", "priority", "created_at"),
    Index("ix_assessment_states_created_at_assessment_id", "created_at", "assessment_id"),
    Index("ix_assessment_states_created_by_created_at", "created_by", "created_at"),
    Index("ix_assessment_states_assessment_type", "assessment_type"),
    Index("ix_assessment_states_server_name", "server_name"),
    Index(
        "ix_assessment_states_next_retry_at",
        "next_retry_at",
        postgresql_where=text("next_retry_at IS NOT NULL"),
    ),
    Index(
        "ix_assessment_states_pending_dispatch_order",
        text("priority DESC"),
        "updated_at",
        postgresql_where=text("state = 'pending'"),
    ),
    Index(
        "ix_assessment_states_finished_completed_at",
        "completed_at",
        postgresql_where=text("completed_at IS NOT NULL"),
    ),
    # The list's text search (q): one trigram index over one expression rather than
    # three, measured (see db/text_search.py). Needs pg_trgm (migration 0004).
    Index(
        SEARCH_INDEX,
        literal_column(SEARCH_DOCUMENT).label("search_document"),
        postgresql_using="gin",
        postgresql_ops={"search_document": "gin_trgm_ops"},
    ),
)

assessment_state_audit = Table(
    "assessment_state_audit",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column(
        "assessment_id",
        Text,
        ForeignKey("assessment_states.assessment_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("event", Text, nullable=False),
    Column("old_state", assessment_state_enum),
    Column("new_state", assessment_state_enum, nullable=False),
    Column("version_from", Integer),
    Column("version_to", Integer, nullable=False),
    Column("changed_by", Text, nullable=False),
    Column("change_reason", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    UniqueConstraint("assessment_id", "version_to"),
    CheckConstraint("version_to = COALESCE(version_from, 0) + 1", name="version_step_is_one"),
    CheckConstraint(
        "(version_from IS NULL) = (old_state IS NULL)", name="first_row_has_no_old_state"
    ),
    CheckConstraint("old_state IS NOT NULL OR new_state = 'pending'", name="chain_starts_pending"),
)

# Operational bookkeeping that is not part of an assessment's versioned state: a
# heartbeat or a re-publish must not bump the version or write audit rows, and must
# never conflict with the handler's own progress updates.
assessment_leases = Table(
    "assessment_leases",
    metadata,
    Column(
        "assessment_id",
        Text,
        ForeignKey("assessment_states.assessment_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("worker_id", Text),
    Column("lease_expires_at", DateTime(timezone=True)),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("dispatched_at", DateTime(timezone=True)),
    Column("dispatch_count", Integer, nullable=False, server_default=text("0")),
    CheckConstraint("dispatch_count >= 0", name="dispatch_count_non_negative"),
    Index(
        "ix_assessment_leases_lease_expires_at",
        "lease_expires_at",
        postgresql_where=text("lease_expires_at IS NOT NULL"),
    ),
)

# The migration's run-time overrides (see assessment_store/migration): one row per
# setting an operator changed; none means the configured MIGRATION_* default holds.
MIGRATION_SETTINGS = ("percentage", "legacy_fallback", "enable_store")
migration_overrides = Table(
    "migration_overrides",
    metadata,
    Column("setting", Text, primary_key=True),
    Column("value", JSONB, nullable=False),
    Column("updated_by", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    CheckConstraint(
        "setting IN ('percentage', 'legacy_fallback', 'enable_store')", name="known_setting"
    ),
)

# What each process's legacy backend holds (the legacy side keeps its assessments in
# memory, so a process elsewhere learns of them only from here): one row per running
# facade that has held legacy work, refreshed every few seconds and deleted when the
# facade closes. A row that stops being refreshed is a process that died (or hangs).
migration_legacy_reports = Table(
    "migration_legacy_reports",
    metadata,
    Column("reporter", Text, primary_key=True),
    Column("backend", Text, nullable=False),
    Column("held", Integer, nullable=False),
    Column("in_flight", Integer, nullable=False),
    Column("by_state", JSONB, nullable=False),
    Column("reported_at", DateTime(timezone=True), nullable=False, server_default=NOW),
    CheckConstraint("held >= 0 AND in_flight >= 0 AND in_flight <= held", name="counts_valid"),
)
