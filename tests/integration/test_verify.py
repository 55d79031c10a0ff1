"""``verify`` after an import: counts and checksums prove the database holds the file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from assessment_store.models import AssessmentFilters
from assessment_store.service import AssessmentStore
from assessment_store.transfer import export_lines, import_lines
from assessment_store.verification import verify_lines
from tests.integration.conftest import cli
from tests.integration.test_transfer import populate


def exported(store: AssessmentStore) -> str:
    return "\n".join(export_lines(store, AssessmentFilters())) + "\n"


def test_an_import_verifies_line_for_line_with_equal_checksums(
    store: AssessmentStore, second_store: AssessmentStore
) -> None:
    populate(store)
    content = exported(store)
    import_lines(second_store, io.StringIO(content))
    report = verify_lines(second_store, content)
    assert report.ok and (report.lines, report.matched) == (5, 5)
    assert report.file_checksum == report.database_checksum
    # The file against the database it came from matches too: the same canonical form.
    assert verify_lines(store, content).database_checksum == report.database_checksum


def test_a_changed_a_missing_and_a_bad_line_are_each_reported(
    store: AssessmentStore, second_store: AssessmentStore
) -> None:
    populate(store)
    content = exported(store)
    import_lines(second_store, io.StringIO(content))
    lines = content.splitlines()
    changed, gone = json.loads(lines[0]), json.loads(lines[1])
    with second_store.engines.primary.begin() as conn:
        conn.execute(
            text("UPDATE assessment_states SET priority = 1 WHERE assessment_id = :id"),
            {"id": changed["assessmentId"]},
        )
        conn.execute(
            text("DELETE FROM assessment_states WHERE assessment_id = :id"),
            {"id": gone["assessmentId"]},
        )
    report = verify_lines(second_store, content + "{not json\n")
    assert not report.ok
    assert (report.lines, report.matched) == (6, 3)
    assert report.different == [f"line 1: {changed['assessmentId']!r} differs in priority"]
    assert report.missing == [f"line 2: {gone['assessmentId']!r} is not in the database"]
    assert report.bad_lines and report.bad_lines[0].startswith("line 6: not JSON")
    assert report.file_checksum != report.database_checksum


@pytest.mark.usefixtures("cli_env")
def test_the_verify_command_exits_0_when_all_match_and_1_otherwise(
    capsys: pytest.CaptureFixture[str], store: AssessmentStore, tmp_path: Path
) -> None:
    populate(store)
    file = tmp_path / "all.jsonl"
    file.write_text(exported(store))
    code, out, _ = cli(capsys, "verify", str(file), "--json")
    assert code == 0 and json.loads(out)["matched"] == 5
    with store.engines.primary.begin() as conn:
        conn.execute(text("UPDATE assessment_states SET priority = 2"))
    code, out, _ = cli(capsys, "verify", str(file))
    assert code == 1 and "0 match" in out and "5 different" in out
