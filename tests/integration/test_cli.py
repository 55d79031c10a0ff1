"""The command line against the test database: data commands, --json, and clear errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from assessment_store.config import Settings, get_settings
from assessment_store.service import AssessmentStore
from tests.factories import failed, processing, request
from tests.integration.conftest import cli


@pytest.mark.usefixtures("cli_env")
def test_submit_then_status_and_audit_as_json(
    capsys: pytest.CaptureFixture[str], store: AssessmentStore
) -> None:
    code, out, _ = cli(
        capsys, "submit", "health", "--server", "db1:5432", "--priority", "8", "--json"
    )
    assert code == 0
    [assessment_id] = json.loads(out)["assessmentIds"]
    code, out, _ = cli(capsys, "status", assessment_id, "--json")
    assert code == 0
    shown = json.loads(out)
    assert (shown["state"], shown["priority"], shown["serverName"]) == ("pending", 8, "db1:5432")
    assert shown["createdBy"] == "cli"
    code, out, _ = cli(capsys, "audit", assessment_id, "--json")
    assert [e["event"] for e in json.loads(out)] == ["create"]


@pytest.mark.usefixtures("cli_env")
def test_submit_a_batch_from_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    batch = tmp_path / "batch.jsonl"
    batch.write_text(
        '{"assessmentType": "health", "serverName": "db1"}\n\n'
        '{"assessmentType": "security", "serverName": "db1"}\n'
    )
    code, out, _ = cli(capsys, "submit", "ignored", "--file", str(batch), "--json")
    assert code == 0 and len(json.loads(out)["assessmentIds"]) == 2


@pytest.mark.usefixtures("cli_env")
def test_list_filters_and_pages(capsys: pytest.CaptureFixture[str], store: AssessmentStore) -> None:
    store.batch_create_assessments([request() for _ in range(3)])
    running = processing(store).assessment_id
    code, out, _ = cli(capsys, "list", "--state", "processing", "--json")
    assert code == 0
    assert [a["assessmentId"] for a in json.loads(out)["items"]] == [running]
    code, out, _ = cli(capsys, "list", "--limit", "2", "--json")
    page = json.loads(out)
    assert len(page["items"]) == 2 and page["nextCursor"]


@pytest.mark.usefixtures("cli_env")
def test_cancel_stats_retry_and_cleanup(
    capsys: pytest.CaptureFixture[str], store: AssessmentStore
) -> None:
    pending = store.create_assessment(request())
    failure = failed(store).assessment_id
    assert cli(capsys, "cancel", pending, "--reason", "testing")[0] == 0
    code, out, _ = cli(capsys, "stats", "--json")
    counts = json.loads(out)["countsByState"]
    assert (counts["cancelled"], counts["failed"]) == (1, 1)
    code, out, _ = cli(capsys, "retry-failed", "--json")
    assert code == 0 and json.loads(out)["retried"] == [failure]
    code, out, _ = cli(capsys, "cleanup", "--retention-days", "30", "--json")
    assert code == 0 and json.loads(out)["deleted"] == 0


@pytest.mark.usefixtures("cli_env")
def test_health_reports_each_component(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "health", "--json")
    assert code == 0
    assert set(json.loads(out)["components"]) == {"database", "redis"}


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["status", "no-such-id"], 1, "not found"),
        (["submit", "inventory"], 2, "assessmentType: unknown type"),
        (["submit", "health", "--options", '{"deepScan": "very"}'], 2, "deepScan"),
        (["cancel", "no-such-id"], 1, "ASSESSMENT_NOT_FOUND"),
        (["list", "--cursor", "garbage"], 2, "cursor"),
    ],
)
def test_errors_are_one_clear_line_without_a_traceback(
    capsys: pytest.CaptureFixture[str], argv: list[str], code: int, message: str
) -> None:
    got, out, err = cli(capsys, *argv)
    assert got == code
    assert message in err and "Traceback" not in err + out


def test_an_unreachable_database_exits_3_saying_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "ASSESSMENT_STORE_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:1/x"
    )
    get_settings.cache_clear()
    try:
        code, _, err = cli(capsys, "status", "anything")
    finally:
        get_settings.cache_clear()
    assert code == 3 and "unreachable" in err


def test_migrate_creates_and_upgrades_a_new_database(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    base_settings: Settings,
) -> None:
    from tests.databases import drop_database, unique_name, url_for

    name = unique_name("assessment_store_cli")
    monkeypatch.setenv("ASSESSMENT_STORE_DATABASE_URL", url_for(base_settings.database_url, name))
    get_settings.cache_clear()
    try:
        code, out, _ = cli(capsys, "migrate")
        assert code == 0
        # At the newest revision, whichever that is (0001 was hard-coded here, and
        # broke when 0002 came).
        assert "created the database" in out
        assert re.search(r"database at revision (\w+) \(newest: \1\)", out), out
        code, out, _ = cli(capsys, "migrate")
        assert code == 0 and "created" not in out
    finally:
        get_settings.cache_clear()
        drop_database(base_settings.database_url, name)


@pytest.mark.usefixtures("cli_env")
def test_maintain_runs_the_chosen_jobs_now(
    capsys: pytest.CaptureFixture[str], store: AssessmentStore
) -> None:
    from sqlalchemy import text

    lost = processing(store).assessment_id
    with store.engines.primary.begin() as conn:
        conn.execute(text("UPDATE assessment_leases SET lease_expires_at = now() - interval '1s'"))
    code, out, _ = cli(capsys, "maintain", "--job", "rescue", "--job", "retention", "--json")
    assert code == 0
    reports = {r["job"]: r for r in json.loads(out)}
    assert reports["rescue"]["affected"] == 1 and reports["retention"]["auditRows"] == 0
    assert store.get_state(lost).error_message.startswith("worker lost")  # type: ignore[union-attr]
    code, _, err = cli(capsys, "maintain", "--job", "defragment")
    assert code == 2 and "unknown job" in err


@pytest.mark.usefixtures("cli_env")
def test_export_then_import_reports_bad_lines_by_number(
    capsys: pytest.CaptureFixture[str], store: AssessmentStore, tmp_path: Path
) -> None:
    store.batch_create_assessments([request() for _ in range(3)])
    target = tmp_path / "out.jsonl"
    code, out, _ = cli(capsys, "export", str(target), "--json")
    assert code == 0 and json.loads(out)["exported"] == 3
    assert len(target.read_text().splitlines()) == 3
    code, _, err = cli(capsys, "import", str(target))
    assert code == 2
    assert "line 1: assessmentId" in err and "already exists" in err
    assert "Traceback" not in err
    assert store.get_assessment_stats().total == 3
