"""Commands about assessments: submit, status, wait, cancel, list, stats, audit."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from assessment_store.cli.output import (
    assessment_panel,
    assessments_table,
    audit_table,
    console,
    errors,
    print_json,
)
from assessment_store.models import AssessmentFilters, AssessmentOptions, AssessmentRequest
from assessment_store.service import AssessmentStore
from assessment_store.states import AssessmentState

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.command()(status)
    app.command()(wait)
    app.command()(cancel)
    app.command(name="list")(list_command)
    app.command()(stats)
    app.command()(audit)


def submit(
    assessment_type: Annotated[str, typer.Argument(help="health, security, compliance, ...")],
    server: Annotated[str | None, typer.Option("--server", "-s", help="serverName")] = None,
    priority: Annotated[int, typer.Option(min=1, max=10)] = 5,
    source: Annotated[str, typer.Option(help="installer or compliance")] = "installer",
    timeout: Annotated[float | None, typer.Option(help="attempt time limit, seconds")] = None,
    assessment_id: Annotated[
        str | None, typer.Option("--id", help="client id (idempotent)")
    ] = None,
    options: Annotated[str | None, typer.Option(help="options as JSON (camelCase)")] = None,
    from_file: Annotated[
        Path | None, typer.Option("--file", help="JSON lines of requests to submit as a batch")
    ] = None,
    created_by: Annotated[str, typer.Option(help="creator recorded on the row")] = "cli",
    as_json: JsonFlag = False,
) -> None:
    """Create an assessment (or a batch from --file) and publish it to the workers."""
    with AssessmentStore(application_name="assessment-store-cli") as store:
        if from_file is not None:
            requests = _read_requests(from_file)
            ids = store.batch_create_assessments(requests, created_by=created_by)
        else:
            parsed_options = AssessmentOptions.model_validate(json.loads(options or "{}"))
            request = AssessmentRequest(
                id=assessment_id,
                assessment_type=assessment_type,
                server_name=server,
                priority=priority,
                source=source,
                timeout=timeout,
                options=parsed_options,
            )
            ids = [store.create_assessment(request, created_by=created_by)]
    if as_json:
        print_json({"assessmentIds": ids})
    else:
        for assessment_id_ in ids:
            console.print(assessment_id_)


def _read_requests(path: Path) -> list[dict[str, Any]]:
    requests = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            requests.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"{path}:{number}: not JSON ({exc.msg})") from None
    return requests


def status(assessment_id: str, as_json: JsonFlag = False) -> None:
    """Show an assessment's current state."""
    with AssessmentStore(application_name="assessment-store-cli") as store:
        current = store.get_state(assessment_id)
    if as_json:
        print_json(current.to_wire())
    else:
        console.print(assessment_panel(current))


def wait(
    assessment_id: str,
    timeout: Annotated[float, typer.Option(help="seconds to wait")] = 30.0,
    as_json: JsonFlag = False,
) -> None:
    """Wait until an assessment is finished; exit 1 on timeout."""
    with (
        AssessmentStore(application_name="assessment-store-cli") as store,
        errors.status(f"waiting for {assessment_id}"),
    ):
        current = store.wait_for_completion(assessment_id, timeout=timeout)
    if as_json:
        print_json(current.to_wire())
    else:
        console.print(assessment_panel(current))


def cancel(
    assessment_id: str,
    reason: Annotated[str | None, typer.Option(help="why, recorded in the audit")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Cancel a pending or running assessment."""
    with AssessmentStore(application_name="assessment-store-cli") as store:
        current = store.cancel_assessment(assessment_id, reason, changed_by="cli")
    if as_json:
        print_json(current.to_wire())
    else:
        console.print(f"{assessment_id}: cancelled (version {current.version})")


def list_command(
    state: Annotated[list[AssessmentState] | None, typer.Option(help="repeatable")] = None,
    assessment_type: Annotated[str | None, typer.Option("--type")] = None,
    server: Annotated[str | None, typer.Option()] = None,
    source: Annotated[str | None, typer.Option()] = None,
    created_after: Annotated[datetime | None, typer.Option(help="ISO time, UTC if naive")] = None,
    created_before: Annotated[datetime | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    cursor: Annotated[str | None, typer.Option(help="nextCursor of the previous page")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List assessments, newest first, one page at a time."""
    filters = AssessmentFilters.model_validate(
        {
            "states": state,
            "assessmentType": assessment_type,
            "serverName": server,
            "source": source,
            "createdAfter": _aware(created_after),
            "createdBefore": _aware(created_before),
            "limit": limit,
            "cursor": cursor,
        }
    )
    with AssessmentStore(application_name="assessment-store-cli") as store:
        page = store.list_assessments(filters)
    if as_json:
        print_json(page.to_wire())
        return
    console.print(assessments_table(page.items))
    if page.next_cursor:
        console.print(f"next page: --cursor {page.next_cursor}")


def _aware(moment: datetime | None) -> datetime | None:
    from datetime import UTC

    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def stats(
    window: Annotated[int, typer.Option(help="seconds for rates")] = 300,
    as_json: JsonFlag = False,
) -> None:
    """Counts by state, throughput, average processing time, error rate, dead letters."""
    with AssessmentStore(application_name="assessment-store-cli") as store:
        figures = store.get_assessment_stats(window_seconds=window)
    if as_json:
        print_json(figures.to_wire())
        return
    for state, count in figures.counts_by_state.items():
        console.print(f"{state.value:>11}: {count}")
    average = figures.average_processing_seconds
    console.print(
        f"total {figures.total}, active {figures.active}, dead letters {figures.dead_letters}; "
        f"last {window}s: {figures.throughput_per_minute:.1f}/min, "
        f"error rate {figures.error_rate:.1%}, "
        f"average {'-' if average is None else f'{average:.2f}s'}"
    )


def audit(assessment_id: str, as_json: JsonFlag = False) -> None:
    """Show an assessment's audit chain, one row per version."""
    with AssessmentStore(application_name="assessment-store-cli") as store:
        entries = store.get_audit_trail(assessment_id)
    if as_json:
        print_json([e.to_wire() for e in entries])
    else:
        console.print(audit_table(entries))
