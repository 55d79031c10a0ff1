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

from assessment_store.cli import (
    api,
    assessments,
    demo,
    keys,
    migration,
    operations,
    processes,
    transfer,
)
from assessment_store.cli.output import print_error
from assessment_store.errors import (
    AssessmentStoreError,
    ConfigurationError,
    StoreUnavailableError,
)
from assessment_store.jsonlines import describe

EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
# Codes that mean "your input is wrong" (exit 2); any other refusal exits 1.
# A value this process cannot decrypt is a configuration problem (ENCRYPTION_KEYS).
EXIT_CODES = {
    "VALIDATION_ERROR": EXIT_BAD_INPUT,
    "PERMANENT_FAILURE": EXIT_BAD_INPUT,
    "DECRYPTION_FAILED": EXIT_UNAVAILABLE,
}

app = typer.Typer(
    name="assessment-store",
    help="Durable assessments in PostgreSQL, run by Celery workers on Redis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
for module in (assessments, operations, processes, api, transfer, demo, migration, keys):
    module.register(app)


def _explain_validation(exc: ValidationError) -> str:
    return "invalid input: " + describe(exc)


def run(entry: Callable[..., Any], argv: list[str] | None = None) -> int:
    """Run the typer app, turning known errors into a message and an exit code."""
    try:
        code = entry(args=argv, standalone_mode=False)
    except ValidationError as exc:
        print_error(_explain_validation(exc))
        return EXIT_BAD_INPUT
    except (StoreUnavailableError, ConfigurationError) as exc:
        print_error(str(exc))
        return EXIT_UNAVAILABLE
    except AssessmentStoreError as exc:
        print_error(f"{exc} ({exc.code})")
        return EXIT_CODES.get(exc.code, EXIT_REFUSED)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        print_error("aborted")
        return 130
    except typer.TyperException as exc:  # usage errors: bad option, missing argument
        return _usage_error(exc)
    # Outside standalone mode click returns a command's typer.Exit code rather than
    # raising it (health's "exit 1 when anything is down" was lost here).
    return code if isinstance(code, int) else 0


def _usage_error(exc: typer.TyperException) -> int:
    """Click's usage error as one line (its own display is a usage block and a box)."""
    # Not importable from typer's public API; typer itself tests the name (#1278).
    if type(exc).__name__ == "NoArgsIsHelpError":
        exc.show()  # type: ignore[attr-defined]  # the help text: no error to report
        return int(getattr(exc, "exit_code", EXIT_BAD_INPUT))
    context = getattr(exc, "ctx", None)
    hint = f" (see '{context.command_path} --help')" if context is not None else ""
    print_error(" ".join(exc.format_message().split()) + hint)
    return int(getattr(exc, "exit_code", EXIT_BAD_INPUT))


def main() -> None:
    """Console-script entry point."""
    sys.exit(run(typer.main.get_command(app), sys.argv[1:]))
