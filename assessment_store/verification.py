"""Checking an import against its file: counts and checksums, line by line.

After ``assessment-store import FILE``, ``assessment-store verify FILE`` proves the
database holds what the file holds: each line's assessment, with its whole audit
trail, is read back, put in the export's canonical form, and compared by SHA-256 with
the line's own. The answer counts the lines that match, are missing or differ (naming
the first field that differs), and gives one checksum over the file and one over what
the database returned for it, which match exactly when every line does.

A row that has changed since the import (a running assessment rescued and retried,
say) differs, as it should: verify right after importing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from assessment_store.jsonlines import BadLineError, describe, numbered_lines, parse_line
from assessment_store.service import AssessmentStore
from assessment_store.transfer import ExportedAssessment, line_for

BATCH = 500
SHOWN_PROBLEMS = 50


@dataclass
class Verification:
    """What ``verify`` found; ``ok`` when every line matched."""

    lines: int = 0
    matched: int = 0
    missing: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    bad_lines: list[str] = field(default_factory=list)
    file_checksum: str = ""
    database_checksum: str = ""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.different or self.bad_lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "lines": self.lines,
            "matched": self.matched,
            "missing": len(self.missing),
            "different": len(self.different),
            "badLines": len(self.bad_lines),
            "fileChecksum": self.file_checksum,
            "databaseChecksum": self.database_checksum,
            "problems": (self.bad_lines + self.missing + self.different)[:SHOWN_PROBLEMS],
        }


def canonical(line: dict[str, Any]) -> dict[str, Any]:
    """An exported line in one form whatever wrote it (times, key order, defaults)."""
    return ExportedAssessment.model_validate(line).to_wire()


def digest(line: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(line, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def _first_difference(expected: dict[str, Any], found: dict[str, Any]) -> str:
    for key in sorted(set(expected) | set(found)):
        if expected.get(key) != found.get(key):
            return key
    return "?"


def _parsed(content: bytes | str, report: Verification) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in numbered_lines(content):
        report.lines += 1
        try:
            value = parse_line(raw)
            if not isinstance(value, dict):
                raise BadLineError("not a JSON object")
            yield number, canonical(value)
        except BadLineError as exc:
            report.bad_lines.append(f"line {number}: {exc}")
        except ValidationError as exc:
            report.bad_lines.append(f"line {number}: {describe(exc)}")


def verify_lines(
    store: AssessmentStore,
    content: bytes | str,
    progress: Callable[[int], None] | None = None,
) -> Verification:
    """Compare every line of an export file with what the database holds."""
    report = Verification()
    file_sum, database_sum = hashlib.sha256(), hashlib.sha256()
    batch: list[tuple[int, dict[str, Any]]] = []

    def check(items: list[tuple[int, dict[str, Any]]]) -> None:
        ids = [line["assessmentId"] for _, line in items]
        held = {row["assessmentId"]: row for row in store_lines(store, ids)}
        for number, expected in items:
            assessment_id = expected["assessmentId"]
            file_sum.update(digest(expected).encode())
            found = held.get(assessment_id)
            if found is None:
                report.missing.append(f"line {number}: {assessment_id!r} is not in the database")
                continue
            database_sum.update(digest(found).encode())
            if digest(found) == digest(expected):
                report.matched += 1
            else:
                report.different.append(
                    f"line {number}: {assessment_id!r} differs in "
                    f"{_first_difference(expected, found)}"
                )

    for item in _parsed(content, report):
        batch.append(item)
        if len(batch) >= BATCH:
            check(batch)
            batch = []
            if progress is not None:
                progress(report.lines)
    if batch:
        check(batch)
    if progress is not None:
        progress(report.lines)
    report.file_checksum = file_sum.hexdigest()
    report.database_checksum = database_sum.hexdigest()
    return report


def store_lines(store: AssessmentStore, ids: list[str]) -> Iterator[dict[str, Any]]:
    """The canonical lines of the held ones of ``ids``, read from the primary (a verify
    follows an import: a replica may not have it yet)."""
    trails = store.get_audit_trails(ids)
    for assessment_id in ids:
        trail = trails.get(assessment_id)
        if trail:
            yield canonical(line_for(store.get_fresh_state(assessment_id), trail))
