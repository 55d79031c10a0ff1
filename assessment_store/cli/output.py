"""Printing for the command line: JSON for machines (``--json``), rich for people."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from assessment_store.models import Assessment, AuditEntry

console = Console()
errors = Console(stderr=True)


def print_json(data: Any) -> None:
    """Compact-but-readable JSON on stdout, nothing else."""
    print(json.dumps(data, indent=2, default=str))


STATE_STYLES = {
    "pending": "yellow",
    "processing": "cyan",
    "completed": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def styled_state(state: str) -> str:
    return f"[{STATE_STYLES.get(state, 'white')}]{state}[/]"


def assessments_table(items: Sequence[Assessment], title: str | None = None) -> Table:
    table = Table(title=title, expand=False)
    table.add_column("id", overflow="fold", min_width=12)
    for column in ("type", "server", "prio", "state", "progress", "retries", "created"):
        table.add_column(column, overflow="fold", min_width=min(8, len(column) + 1))
    for a in items:
        table.add_row(
            a.assessment_id,
            a.assessment_type,
            a.server_name or "",
            str(a.priority),
            styled_state(a.state.value),
            f"{a.progress}%",
            str(a.retry_count),
            a.created_at.strftime("%H:%M:%S"),
        )
    return table


def assessment_panel(a: Assessment) -> Table:
    table = Table(show_header=False, title=f"assessment {a.assessment_id}")
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = {
        "state": styled_state(a.state.value),
        "version": str(a.version),
        "type": a.assessment_type,
        "server": a.server_name or "",
        "priority": str(a.priority),
        "progress": f"{a.progress}%" + (f" ({a.message})" if a.message else ""),
        "retries": str(a.retry_count),
        "next retry": str(a.next_retry_at or ""),
        "worker": a.worker_id or "",
        "created": str(a.created_at),
        "completed": str(a.completed_at or ""),
        "error": a.error_message or "",
        "result": json.dumps(a.result_data) if a.result_data is not None else "",
    }
    for field, value in rows.items():
        table.add_row(field, value)
    return table


def audit_table(entries: Sequence[AuditEntry]) -> Table:
    table = Table(title="audit trail")
    for column in ("version", "event", "from", "to", "by", "reason", "at"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            f"{e.version_from or '-'} -> {e.version_to}",
            e.event,
            e.old_state.value if e.old_state else "",
            e.new_state.value,
            e.changed_by,
            e.change_reason,
            e.created_at.strftime("%H:%M:%S.%f")[:-3],
        )
    return table
