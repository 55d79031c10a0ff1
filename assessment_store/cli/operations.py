"""Operator commands: migrate, retry-failed, cleanup, health."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from assessment_store import maintenance
from assessment_store.cli.output import JsonFlag, console, errors, print_json
from assessment_store.config import get_settings
from assessment_store.db import migrate as migrations
from assessment_store.service import AssessmentStore


def register(app: typer.Typer) -> None:
    app.command()(migrate)
    app.command(name="retry-failed")(retry_failed)
    app.command()(cleanup)
    app.command()(health)
    app.command()(maintain)


def migrate(
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
    create_database: Annotated[
        bool,
        typer.Option(metavar="", help="create the database first if it does not exist"),
    ] = True,
) -> None:
    """Bring the database schema to REVISION (alembic upgrade)."""
    url = get_settings().database_url
    if create_database and migrations.ensure_database(url):
        console.print("created the database")
    migrations.upgrade(url, revision)
    current, head = migrations.revisions(url)
    console.print(f"database at revision {current} (newest: {head})")


def _progress() -> Progress:
    # On stderr: stdout stays clean for --json and pipes. Only for a person at a
    # terminal: into a log or a pipe its last frame would be one more line before an
    # error (which must stay the only one) or a result already on stdout.
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} done"),
        TimeElapsedColumn(),
        console=errors,
        transient=False,
        disable=not errors.is_terminal,
    )


def retry_failed(
    max_retries: Annotated[
        int | None, typer.Option(help="retry failures with fewer retries than this")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Put failed assessments with retries left back to pending now, and publish them."""
    with AssessmentStore(application_name="assessment-store-cli") as store, _progress() as progress:
        task = progress.add_task("retrying failed assessments", total=None)
        ids = store.batch_retry_failed_assessments(
            max_retries, progress=lambda n: progress.update(task, completed=n)
        )
    if as_json:
        print_json({"retried": ids})
    else:
        console.print(f"retried {len(ids)} assessment(s)")


def cleanup(
    retention_days: Annotated[
        float | None, typer.Option(help="delete finished assessments older than this")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Delete finished assessments (and their audit rows) past the retention period."""
    with AssessmentStore(application_name="assessment-store-cli") as store, _progress() as progress:
        days = store.settings.retention_days if retention_days is None else retention_days
        task = progress.add_task(
            f"deleting finished assessments older than {days:g} days", total=None
        )
        deleted = store.cleanup_old_assessments(
            days, progress=lambda n: progress.update(task, completed=n)
        )
    if as_json:
        print_json({"deleted": deleted, "retentionDays": days})
    else:
        console.print(f"deleted {deleted} assessment(s)")


def health(as_json: JsonFlag = False) -> None:
    """Check PostgreSQL and Redis; exit 1 when anything is down."""
    with AssessmentStore(application_name="assessment-store-cli") as store:
        status = store.get_health_status()
    if as_json:
        print_json(status.to_wire())
    else:
        for name, component in status.components.items():
            mark = "[green]ok[/]" if component.ok else "[red]down[/]"
            detail = f"{component.latency_ms:.1f} ms" if component.ok else component.detail
            console.print(f"{name:>9}: {mark} ({detail})")
    if not status.healthy:
        raise typer.Exit(1)


def maintain(
    job: Annotated[
        list[str] | None,
        typer.Option(help="rescue, redispatch, retry or retention (repeatable); default all"),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run beat's maintenance jobs now, once (safe alongside a running beat)."""
    chosen = job or list(maintenance.JOBS)
    unknown = sorted(set(chosen) - set(maintenance.JOBS))
    if unknown:
        raise typer.BadParameter(
            f"unknown job(s) {', '.join(unknown)}; choose from {', '.join(maintenance.JOBS)}",
            param_hint="--job",
        )
    reports = []
    with AssessmentStore(application_name="assessment-store-cli") as store, _progress() as progress:
        for name in chosen:
            task = progress.add_task(name, total=None)

            def advance(done: int, task: TaskID = task) -> None:
                progress.update(task, completed=done)

            reports.append(store.run_maintenance_job(name, progress=advance))
            progress.update(task, description=f"{name} done")
    if as_json:
        print_json(
            [
                {"job": r.job, "affected": r.affected, "skipped": r.skipped, **r.detail}
                for r in reports
            ]
        )
        return
    for report in reports:
        note = " (another runner held the lock)" if report.skipped else ""
        console.print(f"{report.job}: {report.affected}{note}")
