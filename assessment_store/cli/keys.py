"""``rotate-keys``: re-encrypt every value under the first key of ENCRYPTION_KEYS.

Keys come from the environment only (``ASSESSMENT_STORE_ENCRYPTION_KEYS``), never
from the command line. Progress goes to stderr, a line per batch (at most one a
second), the final count to stdout. Exit 0 when every value is under the first key,
1 when some rows stayed busy (run it again), 3 when a key is missing or wrong
(nothing written) or encryption is off.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from assessment_store import rotation
from assessment_store.cli.output import console, errors, print_json
from assessment_store.service import AssessmentStore

PROGRESS_EVERY_SECONDS = 1.0


def register(app: typer.Typer) -> None:
    app.command(name="rotate-keys")(rotate_keys)


def rotate_keys(
    batch_size: Annotated[
        int,
        typer.Option(
            min=1,
            max=rotation.MAX_BATCH_SIZE,
            help="rows per transaction (each a short one, while workers run)",
        ),
    ] = rotation.DEFAULT_BATCH_SIZE,
    as_json: Annotated[
        bool, typer.Option("--json", metavar="", help="Print JSON instead of text.")
    ] = False,
) -> None:
    """Re-encrypt every value not under the first key of ENCRYPTION_KEYS (and every
    value written before encryption was on), in bounded batches, while everything
    keeps running."""
    shown: dict[str, float] = {}

    def report(phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - shown.get(phase, 0.0) < PROGRESS_EVERY_SECONDS:
            return
        shown[phase] = now
        errors.print(f"{phase}: {done}/{total} re-encrypted", highlight=False)

    with AssessmentStore(application_name="assessment-store-rotate-keys") as store:
        result = rotation.rotate_keys(store.runtime, batch_size=batch_size, progress=report)
    if as_json:
        print_json(
            {
                "keyId": result.key_id,
                "assessments": result.assessments,
                "auditRows": result.audit_rows,
                "remainingAssessments": result.remaining_assessments,
                "remainingAuditRows": result.remaining_audit_rows,
                "complete": result.complete,
            }
        )
    else:
        console.print(
            f"re-encrypted {result.assessments} assessment(s) and {result.audit_rows} audit "
            f"row(s) under key {result.key_id!r}",
            highlight=False,
        )
        if not result.complete:
            errors.print(
                f"{result.remaining_assessments} assessment(s) and "
                f"{result.remaining_audit_rows} audit row(s) are still not under key "
                f"{result.key_id!r} (busy rows, or a process still encrypting with an "
                "older first key): run rotate-keys again",
                highlight=False,
            )
    if not result.complete:
        raise typer.Exit(1)
