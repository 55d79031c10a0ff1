"""``assessment-store export FILE`` and ``assessment-store import FILE``."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from assessment_store.cli.assessments import JsonFlag
from assessment_store.cli.operations import _progress
from assessment_store.cli.output import console, print_json
from assessment_store.models import AssessmentFilters
from assessment_store.service import AssessmentStore
from assessment_store.states import AssessmentState
from assessment_store.transfer import export_lines, import_lines


def register(app: typer.Typer) -> None:
    app.command(name="export")(export_command)
    app.command(name="import")(import_command)


def export_command(
    file: Annotated[Path, typer.Argument(help="JSON lines file to write ('-' for stdout)")],
    state: Annotated[list[AssessmentState] | None, typer.Option(help="repeatable")] = None,
    created_after: Annotated[datetime | None, typer.Option()] = None,
    created_before: Annotated[datetime | None, typer.Option()] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write assessments with their audit trails as JSON lines (camelCase)."""
    from datetime import UTC

    def aware(moment: datetime | None) -> datetime | None:
        return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment

    filters = AssessmentFilters(
        states=state, created_after=aware(created_after), created_before=aware(created_before)
    )
    count = 0
    with AssessmentStore(application_name="assessment-store-cli") as store, _progress() as progress:
        task = progress.add_task(f"exporting to {file}", total=None)
        output = sys.stdout if str(file) == "-" else file.open("w", encoding="utf-8")
        try:
            for line in export_lines(store, filters, lambda n: progress.update(task, completed=n)):
                output.write(line + "\n")
                count += 1
        finally:
            if output is not sys.stdout:
                output.close()
    if as_json:
        print_json({"exported": count, "file": str(file)})
    elif str(file) != "-":
        console.print(f"exported {count} assessment(s) to {file}")


def import_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSON lines written by export", exists=True, dir_okay=False, readable=True
        ),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Validate every line, then import all of them in one transaction (or none)."""
    with (
        AssessmentStore(application_name="assessment-store-cli") as store,
        _progress() as progress,
        file.open(encoding="utf-8") as f,
    ):
        task = progress.add_task(f"importing {file}", total=None)
        count = import_lines(store, f, lambda n: progress.update(task, completed=n))
    if as_json:
        print_json({"imported": count})
    else:
        console.print(f"imported {count} assessment(s)")
