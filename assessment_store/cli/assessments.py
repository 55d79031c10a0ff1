"""Commands about assessments: submit, status, wait, cancel, list, stats, audit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from assessment_store.cli.files import read_bytes
from assessment_store.cli.options import json_option, list_filters
from assessment_store.cli.output import (
    JsonFlag,
    assessment_panel,
    assessments_table,
    audit_table,
    console,
    errors,
    print_json,
    print_table,
)
from assessment_store.errors import BatchRejectedError
from assessment_store.http.schemas import BatchCreateRequest
from assessment_store.inputs import MAX_STATS_WINDOW_SECONDS, check_window_seconds
from assessment_store.jsonlines import BadLineError, describe, numbered_lines, parse_line
from assessment_store.models import AssessmentRequest
from assessment_store.service import AssessmentStore
from assessment_store.waiting import MAX_WAIT_SECONDS, check_wait_timeout

# Ranges are the models' (as in the API), not typer's min/max: one rule, one message.
StateOption = Annotated[
    list[str] | None,
    typer.Option(
        "--state", metavar="<pending|processing|completed|failed|cancelled>", help="repeatable"
    ),
]
AfterOption = Annotated[
    str | None, typer.Option(metavar="<ISO time>", help="with a timezone, e.g. 2025-01-31T00:00Z")
]
BeforeOption = Annotated[str | None, typer.Option(metavar="<ISO time>", help="with a timezone")]


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
    priority: Annotated[int, typer.Option(help="1 (lowest) to 10")] = 5,
    source: Annotated[str, typer.Option(help="installer or compliance")] = "installer",
    timeout: Annotated[float | None, typer.Option(help="attempt time limit, seconds")] = None,
    assessment_id: Annotated[
        str | None, typer.Option("--id", help="client id (idempotent)")
    ] = None,
    options_json: Annotated[
        str | None, typer.Option("--options", help="options as JSON (camelCase)")
    ] = None,
    from_file: Annotated[
        Path | None, typer.Option("--file", help="JSON lines of requests to submit as a batch")
    ] = None,
    created_by: Annotated[str, typer.Option(help="creator recorded on the row")] = "cli",
    as_json: JsonFlag = False,
) -> None:
    """Create an assessment (or a batch from --file) and publish it to the workers."""
    if from_file is not None:
        requests = _read_requests(from_file)
    else:
        # The API's body, by its wire names: its errors name the same fields.
        fields: dict[str, Any] = {
            "id": assessment_id,
            "assessmentType": assessment_type,
            "serverName": server,
            "priority": priority,
            "source": source,
            "timeout": timeout,
        }
        parsed_options = json_option("options", options_json)
        if parsed_options is not None:
            fields["options"] = parsed_options
        requests = [AssessmentRequest.model_validate(fields)]
    with AssessmentStore(application_name="assessment-store-cli") as store:
        ids = store.batch_create_assessments(requests, created_by=created_by)
    if as_json:
        print_json({"assessmentIds": ids})
    else:
        for assessment_id_ in ids:
            console.print(assessment_id_)


def _read_requests(path: Path) -> list[AssessmentRequest]:
    """Every line of a batch file as a request, or BatchRejectedError naming each bad
    line; then the API's batch rules (at least one, at most MAX_BATCH)."""
    requests: list[AssessmentRequest] = []
    problems: list[str] = []
    for number, line in numbered_lines(read_bytes(path)):
        try:
            requests.append(AssessmentRequest.model_validate(parse_line(line)))
        except BadLineError as exc:
            problems.append(f"line {number}: {exc}")
        except ValidationError as exc:
            problems.append(f"line {number}: {describe(exc)}")
    if problems:
        raise BatchRejectedError(problems)
    return list(BatchCreateRequest(assessments=requests).assessments)


def status(assessment_id: str, as_json: JsonFlag = False) -> None:
    """Show an assessment's current state."""
    with AssessmentStore(application_name="assessment-store-cli") as store:
        current = store.get_state(assessment_id)
    if as_json:
        print_json(current.to_wire())
    else:
        print_table(assessment_panel(current))


def wait(
    assessment_id: str,
    timeout: Annotated[
        float, typer.Option(help=f"seconds to wait, at most {MAX_WAIT_SECONDS:g}")
    ] = 30.0,
    as_json: JsonFlag = False,
) -> None:
    """Wait until an assessment is finished; exit 1 on timeout."""
    seconds = check_wait_timeout("timeout", timeout)
    with (
        AssessmentStore(application_name="assessment-store-cli") as store,
        errors.status(f"waiting for {assessment_id}"),
    ):
        current = store.wait_for_completion(assessment_id, timeout=seconds)
    if as_json:
        print_json(current.to_wire())
    else:
        print_table(assessment_panel(current))


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
    state: StateOption = None,
    assessment_type: Annotated[str | None, typer.Option("--type")] = None,
    server: Annotated[str | None, typer.Option()] = None,
    source: Annotated[str | None, typer.Option(help="installer or compliance")] = None,
    created_after: AfterOption = None,
    created_before: BeforeOption = None,
    limit: Annotated[int, typer.Option(help="1 to 1000")] = 50,
    cursor: Annotated[str | None, typer.Option(help="nextCursor of the previous page")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List assessments, newest first, one page at a time."""
    filters = list_filters(
        {
            "states": state,
            "assessmentType": assessment_type,
            "serverName": server,
            "source": source,
            "createdAfter": created_after,
            "createdBefore": created_before,
            "limit": limit,
            "cursor": cursor,
        }
    )
    with AssessmentStore(application_name="assessment-store-cli") as store:
        page = store.list_assessments(filters)
    if as_json:
        print_json(page.to_wire())
        return
    print_table(assessments_table(page.items))
    if page.next_cursor:
        console.print(f"next page: --cursor {page.next_cursor}", soft_wrap=True)


def stats(
    window: Annotated[
        int, typer.Option(help=f"seconds for rates, 1 to {MAX_STATS_WINDOW_SECONDS}")
    ] = 300,
    as_json: JsonFlag = False,
) -> None:
    """Counts by state, throughput, average processing time, error rate, dead letters."""
    seconds = check_window_seconds("window", window)
    with AssessmentStore(application_name="assessment-store-cli") as store:
        figures = store.get_assessment_stats(window_seconds=seconds)
    if as_json:
        print_json(figures.to_wire())
        return
    for state, count in figures.counts_by_state.items():
        console.print(f"{state.value:>11}: {count}")
    average = figures.average_processing_seconds
    console.print(
        f"total {figures.total}, active {figures.active}, dead letters {figures.dead_letters}; "
        f"last {seconds}s: {figures.throughput_per_minute:.1f}/min, "
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
        print_table(audit_table(entries))
