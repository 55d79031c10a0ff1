"""Printing for the command line: JSON for machines (``--json``), rich for people."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from assessment_store.models import Assessment, AuditEntry

console = Console()
errors = Console(stderr=True)
# Wide enough for any table's natural width when measuring it.
UNBOUNDED_WIDTH = 1_000_000


def flag(name: str, description: str) -> Any:
    """A boolean option that takes no value. Its empty metavar keeps typer's help from
    printing ``<bool>`` after it, which reads as if it wanted one (``--json true``)."""
    return typer.Option(name, metavar="", help=description)


# The one --json of every command whose output is data.
JsonFlag = Annotated[bool, flag("--json", "Print JSON instead of a table.")]


def print_error(message: str) -> None:
    """``error: message`` on stderr, as given: never wrapped at the terminal's width
    (one line stays one line) and never read as rich markup (a ``[/]`` in a file name
    or a field must print, not fail)."""
    errors.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True, highlight=False)


def print_table(table: Table) -> None:
    """Every column, whatever the width: folded to fit a terminal (never cut off), and
    at its natural width into a pipe or file, where nobody's screen limits it."""
    if console.is_terminal:
        console.print(table, crop=False)
        return
    options = console.options.update(max_width=UNBOUNDED_WIDTH)
    natural = Measurement.get(console, options, table).maximum
    Console(file=console.file, width=max(natural, console.width)).print(table, crop=False)


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


def styled_state(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, "white"))


def _cells(*values: str) -> list[Text]:
    # Text, not str: rich would read a "[/]" in a server name or a reason as markup,
    # and fail on it or swallow it.
    return [Text(value) for value in values]


def assessments_table(items: Sequence[Assessment], title: str | None = None) -> Table:
    table = Table(title=title, expand=False)
    # No minimum widths: together they were wider than 80 columns, so the table was
    # cut off at the right (the created column lost); folding keeps every column.
    for column in ("id", "type", "server", "prio", "state", "progress", "retries", "created"):
        table.add_column(column, overflow="fold")
    for a in items:
        table.add_row(
            *_cells(a.assessment_id, a.assessment_type, a.server_name or "", str(a.priority)),
            styled_state(a.state.value),
            *_cells(
                f"{a.progress}%", str(a.retry_count), a.created_at.strftime("%Y-%m-%d %H:%M:%S")
            ),
        )
    return table


def assessment_panel(a: Assessment) -> Table:
    table = Table(show_header=False, title=Text(f"assessment {a.assessment_id}"))
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    rows = {
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
    table.add_row("state", styled_state(a.state.value))
    for field, value in rows.items():
        table.add_row(field, Text(value))
    return table


def audit_table(entries: Sequence[AuditEntry]) -> Table:
    table = Table(title="audit trail")
    for column in ("version", "event", "from", "to", "by", "reason", "at"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(
            *_cells(
                f"{e.version_from or '-'} -> {e.version_to}",
                e.event,
                e.old_state.value if e.old_state else "",
                e.new_state.value,
                e.changed_by,
                e.change_reason,
                e.created_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
            )
        )
    return table
