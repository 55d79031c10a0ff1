"""``assessment-store demo``: the main job (see assessment_store.demo.runner)."""

from __future__ import annotations

from typing import Annotated

import typer

from assessment_store.cli.output import console, flag


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(
    rounds: Annotated[int, typer.Option(min=1, max=50, help="how many of the mixed set")] = 3,
    keep_running: Annotated[
        bool, flag("--keep-running", "leave the system up after the batch")
    ] = False,
    timeout: Annotated[float, typer.Option(help="give up after this many seconds")] = 180.0,
    wait_for_dashboard: Annotated[
        bool,
        flag(
            "--wait-for-dashboard",
            "submit the batch only once a dashboard is open (its URL and a token are printed)",
        ),
    ] = False,
) -> None:
    """Start a worker and beat, run a mixed batch to completion, and summarise it."""
    from assessment_store.demo.runner import run_demo

    code = run_demo(
        rounds=rounds,
        keep_running=keep_running,
        timeout=timeout,
        console=console,
        wait_for_dashboard=wait_for_dashboard,
    )
    if code:
        raise typer.Exit(code)
