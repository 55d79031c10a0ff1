"""The ``assessment-store`` command (SPEC section 9).

Errors are printed as one line saying what went wrong and what to do, never a
traceback: exit 1 for a refused operation, 2 for bad input, 3 for a service that is
down, a database that is not migrated or a bad configuration (EXIT_CODES).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import typer
from pydantic import ValidationError

from assessment_store.cli import api, assessments, demo, operations, processes, transfer
from assessment_store.cli.output import errors
from assessment_store.errors import (
    AssessmentStoreError,
    ConfigurationError,
    StoreUnavailableError,
)

EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
# Codes that mean "your input is wrong" (exit 2); any other refusal exits 1.
EXIT_CODES = {"VALIDATION_ERROR": EXIT_BAD_INPUT, "PERMANENT_FAILURE": EXIT_BAD_INPUT}

app = typer.Typer(
    name="assessment-store",
    help="Durable assessments in PostgreSQL, run by Celery workers on Redis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
for module in (assessments, operations, processes, api, transfer, demo):
    module.register(app)


def _explain_validation(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "input"
        problems.append(f"{field}: {error['msg']}")
    return "invalid input: " + "; ".join(problems)


def run(entry: Callable[..., Any], argv: list[str] | None = None) -> int:
    """Run the typer app, turning known errors into a message and an exit code."""
    try:
        entry(args=argv, standalone_mode=False)
    except ValidationError as exc:
        errors.print(f"[red]error:[/] {_explain_validation(exc)}", highlight=False)
        return EXIT_BAD_INPUT
    except (StoreUnavailableError, ConfigurationError) as exc:
        errors.print(f"[red]error:[/] {exc}", highlight=False)
        return EXIT_UNAVAILABLE
    except AssessmentStoreError as exc:
        errors.print(f"[red]error:[/] {exc} ({exc.code})", highlight=False)
        return EXIT_CODES.get(exc.code, EXIT_REFUSED)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        errors.print("aborted")
        return 130
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()
        return int(getattr(exc, "exit_code", 2))
    return 0


def main() -> None:
    """Console-script entry point."""
    sys.exit(run(typer.main.get_command(app), sys.argv[1:]))
