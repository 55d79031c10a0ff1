"""``assessment-store export FILE`` and ``assessment-store import FILE``."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from assessment_store.cli.assessments import AfterOption, BeforeOption, StateOption
from assessment_store.cli.files import read_bytes, written_whole
from assessment_store.cli.operations import _progress
from assessment_store.cli.options import list_filters
from assessment_store.cli.output import JsonFlag, console, print_json
from assessment_store.models import AssessmentFilters
from assessment_store.service import AssessmentStore
from assessment_store.transfer import export_lines, import_lines
from assessment_store.verification import verify_lines

STDOUT = "-"


def register(app: typer.Typer) -> None:
    app.command(name="export")(export_command)
    app.command(name="import")(import_command)
    app.command(name="verify")(verify_command)


def export_command(
    file: Annotated[Path, typer.Argument(help="JSON lines file to write ('-' for stdout)")],
    state: StateOption = None,
    created_after: AfterOption = None,
    created_before: BeforeOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Write assessments with their audit trails as JSON lines (camelCase)."""
    filters = list_filters(
        {"states": state, "createdAfter": created_after, "createdBefore": created_before}
    )
    if str(file) == STDOUT:
        count = _export(filters, str(file), sys.stdout.write)
    else:
        with written_whole(file) as write:
            count = _export(filters, str(file), write)
    if as_json:
        print_json({"exported": count, "file": str(file)})
    elif str(file) != STDOUT:
        console.print(f"exported {count} assessment(s) to {file}", soft_wrap=True)


def _export(filters: AssessmentFilters, name: str, write: Callable[[str], object]) -> int:
    count = 0
    with AssessmentStore(application_name="assessment-store-cli") as store, _progress() as progress:
        task = progress.add_task(f"exporting to {name}", total=None)
        for line in export_lines(store, filters, lambda n: progress.update(task, completed=n)):
            write(line + "\n")
            count += 1
    return count


def import_command(
    file: Annotated[Path, typer.Argument(help="JSON lines written by export")],
    as_json: JsonFlag = False,
) -> None:
    """Validate every line, then import all of them in one transaction (or none)."""
    content = read_bytes(file)  # undecodable lines are reported by number, like any
    with AssessmentStore(application_name="assessment-store-cli") as store, _progress() as progress:
        task = progress.add_task(f"importing {file}", total=None)
        count = import_lines(
            store, io.BytesIO(content), lambda n: progress.update(task, completed=n)
        )
    if as_json:
        print_json({"imported": count})
    else:
        console.print(f"imported {count} assessment(s)")


def verify_command(
    file: Annotated[Path, typer.Argument(help="JSON lines written by export (and imported)")],
    as_json: JsonFlag = False,
) -> None:
    """Check that the database holds exactly what the file holds: counts and checksums
    of every assessment with its audit trail. Exit 1 when anything differs."""
    content = read_bytes(file)
    with AssessmentStore(application_name="assessment-store-cli") as store, _progress() as progress:
        task = progress.add_task(f"verifying {file}", total=None)
        report = verify_lines(store, content, lambda n: progress.update(task, completed=n))
    if as_json:
        print_json(report.to_json())
    else:
        summary = report.to_json()
        for problem in summary["problems"]:
            console.print(problem, soft_wrap=True, markup=False)
        console.print(
            f"{report.lines} line(s): {report.matched} match, {len(report.missing)} missing, "
            f"{len(report.different)} different, {len(report.bad_lines)} bad; checksum "
            f"file {report.file_checksum[:16]} database {report.database_checksum[:16]}",
            soft_wrap=True,
            markup=False,
        )
    if not report.ok:
        raise typer.Exit(1)
