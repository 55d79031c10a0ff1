"""Bad input at the command line: one line naming what is wrong, a non-zero exit, never
a traceback; the same rules and field names as the HTTP API; tables whole at any width.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import Engine, text

from assessment_store.cli import output
from assessment_store.config import get_settings
from assessment_store.errors import StoreUnavailableError
from assessment_store.http.app import create_app
from assessment_store.http.auth import DEVELOPMENT_SECRET, Role, authenticate, issue_token
from assessment_store.service import AssessmentStore
from tests.factories import request
from tests.integration.conftest import cli

SECRET = "cli-input-test-secret-0123456789abcdef"
JSON_COMMANDS = [
    ["submit", "health"],
    ["status", "x"],
    ["wait", "x"],
    ["cancel", "x"],
    ["list"],
    ["stats"],
    ["audit", "x"],
    ["retry-failed"],
    ["cleanup"],
    ["health"],
    ["maintain"],
    ["export", "x"],
    ["import", "x"],
]


def the_error(err: str) -> str:
    """The one line of stderr, which must be an error (and not a traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "plain.txt").write_text("not a directory\n")
    return tmp_path


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["submit", "health", "--options", "{not json"], "options: not JSON (Expecting property"),
        (["submit", "health", "--options", ""], "options: not JSON"),
        (["submit", "health", "--options", "NaN"], "options: not JSON (NaN"),
        (["submit", "health", "--options", "[1]"], "options: Input should be a valid dictionary"),
        # A key holding a newline would have split the message into two lines.
        (["submit", "health", "--options", '{"a\\nb": 1}'], "options.'a\\nb': Extra inputs"),
        (["submit", "health", "--priority", "11"], "priority: Input should be less than or equal"),
        (["submit", "health", "--priority", "many"], "Invalid value for '--priority'"),
        (["submit", "health", "--file", "{tmp}/missing.jsonl"], "cannot read it: No such file"),
        (["submit", "health", "--file", "{tmp}"], "cannot read it: Is a directory"),
        (["submit", "health", "--file", "{tmp}/empty.jsonl"], "assessments: List should have at"),
        (["export", "/nonexistent-dir/x.jsonl"], "/nonexistent-dir/x.jsonl: cannot write it: No"),
        (["export", "{tmp}"], "cannot write it: Is a directory"),
        (["export", "{tmp}/plain.txt/x.jsonl"], "cannot write it: Not a directory"),
        (
            ["export", "{tmp}/x", "--created-after", "2025-01-01T00:00"],
            "createdAfter: Input should",
        ),
        (["export", "{tmp}/x", "--state", "paused"], "state.0: Input should be 'pending'"),
        (["import", "{tmp}/missing.jsonl"], "missing.jsonl: cannot read it: No such file"),
        (["import", "{tmp}"], "cannot read it: Is a directory"),
        (["token", "--sub", "", "--role", "admin", "--dev"], "sub: must be a non-empty string"),
        (["token", "--sub", " ", "--role", "admin", "--dev"], "sub: must be a non-empty string"),
        (["token", "--sub", "x" * 256, "--role", "admin", "--dev"], "sub: must be at most 255"),
        (["token", "--sub", "a\x00b", "--role", "admin", "--dev"], "sub: must not contain NUL"),
        (["token", "--sub", "x", "--role", "root", "--dev"], "role: must be producer, viewer or"),
        (["token", "--sub", "x", "--role", "admin", "--ttl-hours", "0", "--dev"], "above zero"),
        (["token", "--sub", "x", "--role", "admin", "--ttl-hours", "169", "--dev"], "at most 168"),
        (["list", "--json", "true"], "unexpected extra argument(s) (true)"),
        (["list", "--limit", "many"], "Invalid value for '--limit'"),
        (["status"], "Missing argument"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], files: Path, argv: list[str], message: str
) -> None:
    code, out, err = cli(capsys, *(arg.replace("{tmp}", str(files)) for arg in argv))
    assert code == 2, err
    assert message in the_error(err)
    assert "Traceback" not in out


@pytest.mark.usefixtures("cli_env")
def test_an_unreadable_file_is_one_line(
    capsys: pytest.CaptureFixture[str], files: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(self: Path) -> bytes:  # as for any user but root, who reads anything
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refused)
    for argv in (["import", str(files / "empty.jsonl")], ["submit", "x", "--file", "y"]):
        code, _, err = cli(capsys, *argv)
        assert code == 2 and "cannot read it: Permission denied" in the_error(err)


@pytest.mark.usefixtures("cli_env")
def test_a_full_disk_is_one_line_and_leaves_no_file(
    capsys: pytest.CaptureFixture[str], store: AssessmentStore, files: Path
) -> None:
    store.create_assessment(request())
    code, _, err = cli(capsys, "export", "/dev/full")
    assert code == 2 and "/dev/full: cannot write it: No space left on device" in the_error(err)


@pytest.mark.usefixtures("cli_env")
def test_a_failed_export_leaves_the_old_file_and_no_partial_one(
    capsys: pytest.CaptureFixture[str],
    store: AssessmentStore,
    files: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def one_line_then_down(*_: object, **__: object) -> Iterator[str]:
        yield "{}"
        raise StoreUnavailableError("PostgreSQL is unreachable")

    target = files / "out.jsonl"
    target.write_text("previous export\n")
    monkeypatch.setattr("assessment_store.cli.transfer.export_lines", one_line_then_down)
    code, _, err = cli(capsys, "export", str(target))
    assert code == 3 and "unreachable" in the_error(err)
    assert target.read_text() == "previous export\n"
    assert sorted(p.name for p in files.iterdir()) == ["empty.jsonl", "out.jsonl", "plain.txt"]


@pytest.mark.usefixtures("cli_env")
def test_an_import_that_is_not_utf8_or_not_json_lines_names_each_line(
    capsys: pytest.CaptureFixture[str], files: Path, raw_engine: Engine
) -> None:
    source = files / "latin1.jsonl"
    source.write_bytes(b'{"serverName": "caf\xe9"}\n\n\xff\xfe\n{not json\n' + b"[" * 100_000)
    code, _, err = cli(capsys, "import", str(source))
    assert code == 2 and "Traceback" not in err
    assert err.splitlines() == [
        "error: nothing imported: 4 bad line(s)",
        "line 1: not UTF-8 text (byte 0xe9 at position 20)",
        "line 3: not UTF-8 text (byte 0xff at position 1)",
        "line 4: not JSON (Expecting property name enclosed in double quotes at column 2)",
        "line 5: not JSON we accept (nested too deeply) (VALIDATION_ERROR)",
    ]
    pretty = files / "pretty.json"
    pretty.write_text(json.dumps({"assessmentId": "a", "state": "pending"}, indent=2))
    code, _, err = cli(capsys, "import", str(pretty))
    assert code == 2 and err.startswith("error: nothing imported: 4 bad line(s)\nline 1: ")
    assert count_rows(raw_engine) == (0, 0)


@pytest.mark.usefixtures("cli_env")
def test_an_empty_import_imports_nothing(capsys: pytest.CaptureFixture[str], files: Path) -> None:
    code, out, err = cli(capsys, "import", str(files / "empty.jsonl"))
    assert (code, out, err) == (0, "imported 0 assessment(s)\n", "")


@pytest.mark.usefixtures("cli_env")
def test_a_batch_file_names_each_bad_line_and_submits_nothing(
    capsys: pytest.CaptureFixture[str], files: Path, raw_engine: Engine
) -> None:
    batch = files / "batch.jsonl"
    batch.write_bytes(
        b'{"assessmentType": "compliance"}\n\n{bad\n\xff\n'
        b'{"assessmentType": "compliance", "priority": 0}\n'
    )
    code, _, err = cli(capsys, "submit", "ignored", "--file", str(batch))
    assert code == 2
    assert err.splitlines() == [
        "error: nothing submitted: 3 bad line(s)",
        "line 3: not JSON (Expecting property name enclosed in double quotes at column 2)",
        "line 4: not UTF-8 text (byte 0xff at position 1)",
        "line 5: priority: Input should be greater than or equal to 1 (VALIDATION_ERROR)",
    ]
    assert count_rows(raw_engine) == (0, 0)


def count_rows(engine: Engine) -> tuple[int, int]:
    """Assessments and audit rows in the database, by plain SQL."""
    with engine.connect() as conn:
        states = conn.execute(text("SELECT count(*) FROM assessment_states")).scalar_one()
        audits = conn.execute(text("SELECT count(*) FROM assessment_state_audit")).scalar_one()
    return int(states), int(audits)


# -- the same rules and field names as the API -------------------------------------


@pytest.fixture
def api(store: AssessmentStore) -> Iterator[TestClient]:
    with TestClient(create_app(store, SECRET), raise_server_exceptions=False) as client:
        token = issue_token(SECRET, "admin", Role.ADMIN, timedelta(hours=1))
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize(
    ("argv", "query"),
    [
        (["list", "--limit", "0"], "/v1/assessments?limit=0"),
        (["list", "--limit", "1001"], "/v1/assessments?limit=1001"),
        (["list", "--state", "paused"], "/v1/assessments?state=paused"),
        (["list", "--type", "t" * 65], "/v1/assessments?type=" + "t" * 65),
        (["list", "--server", "s" * 1025], "/v1/assessments?server=" + "s" * 1025),
        (["list", "--server", "a\x00b"], "/v1/assessments?server=a%00b"),
        (["list", "--source", "elsewhere"], "/v1/assessments?source=elsewhere"),
        (
            ["list", "--created-after", "2025-01-31T00:00"],
            "/v1/assessments?createdAfter=2025-01-31T00:00",
        ),
        (["list", "--created-before", "2025-01-31"], "/v1/assessments?createdBefore=2025-01-31"),
        (["list", "--created-after", "soon"], "/v1/assessments?createdAfter=soon"),
        (["list", "--cursor", "garbage"], "/v1/assessments?cursor=garbage"),
        (["list", "--cursor", "c" * 513], "/v1/assessments?cursor=" + "c" * 513),
        (["stats", "--window", "0"], "/v1/stats?window=0"),
        (["stats", "--window", "86401"], "/v1/stats?window=86401"),
        (["wait", "x", "--timeout", "0"], "/v1/assessments/x/wait?timeout=0"),
        (["wait", "x", "--timeout", "-1"], "/v1/assessments/x/wait?timeout=-1"),
        (["wait", "x", "--timeout", "nan"], "/v1/assessments/x/wait?timeout=nan"),
        (["wait", "x", "--timeout", "301"], "/v1/assessments/x/wait?timeout=301"),
    ],
)
def test_an_option_is_refused_as_the_api_refuses_its_query_parameter(
    capsys: pytest.CaptureFixture[str], api: TestClient, argv: list[str], query: str
) -> None:
    response = api.get(query)
    assert response.status_code == 422, response.text
    api_field = response.json()["error"]["message"].split(":")[0]
    code, _, err = cli(capsys, *argv)
    assert code == 2
    cli_field = the_error(err).removeprefix("error: ").removeprefix("invalid input: ")
    assert cli_field.split(":")[0] == api_field


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize(
    ("argv", "body"),
    [
        (["submit", "health", "--priority", "0"], {"priority": 0}),
        (["submit", "health", "--source", "elsewhere"], {"source": "elsewhere"}),
        (["submit", "health", "--timeout", "0"], {"timeout": 0}),
        (["submit", "health", "--timeout", "86401"], {"timeout": 86401}),
        (["submit", "health", "--id", "a/b"], {"id": "a/b"}),
        (
            ["submit", "health", "--options", '{"deepScan": "very"}'],
            {"options": {"deepScan": "very"}},
        ),
        (["submit", "health", "--options", '{"bogus": 1}'], {"options": {"bogus": 1}}),
    ],
)
def test_a_submit_option_is_refused_as_the_api_refuses_its_field(
    capsys: pytest.CaptureFixture[str], api: TestClient, argv: list[str], body: dict[str, object]
) -> None:
    content = json.dumps({"assessmentType": "health", "serverName": "db:5432", **body})
    response = api.post(
        "/v1/assessments", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    api_field = response.json()["error"]["message"].split(":")[0]
    code, _, err = cli(capsys, *argv, "--server", "db:5432")
    assert code == 2
    cli_field = the_error(err).removeprefix("error: ").removeprefix("invalid input: ")
    assert cli_field.split(":")[0] == api_field


@pytest.mark.usefixtures("cli_env")
def test_a_minted_token_is_one_the_api_accepts(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "token", "--sub", "alice", "--role", "viewer", "--dev")
    assert code == 0
    caller = authenticate(DEVELOPMENT_SECRET, "Bearer " + out.strip())
    assert (caller.subject, caller.role) == ("alice", Role.VIEWER)


# -- flags, exit codes, tables -------------------------------------------------------


@pytest.mark.parametrize("command", JSON_COMMANDS, ids=lambda c: c[0])
def test_json_is_a_flag_that_takes_no_value(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code, out, _ = cli(capsys, command[0], "--help")
    assert code == 0
    [line] = [line for line in out.splitlines() if "--json" in line]
    assert "<bool>" not in line and "Print JSON" in line


@pytest.mark.usefixtures("cli_env")
def test_health_exits_1_when_redis_is_down(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSESSMENT_STORE_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    code, out, _ = cli(capsys, "health", "--json")
    assert code == 1 and json.loads(out)["components"]["redis"]["ok"] is False


LONG_SERVER = "a-rather-long-server-name.datacentre.example.com:5432"


@pytest.mark.usefixtures("cli_env")
def test_the_list_table_keeps_every_column_into_a_pipe(
    capsys: pytest.CaptureFixture[str], store: AssessmentStore
) -> None:
    assessment_id = store.create_assessment(request(server_name=LONG_SERVER))
    created = store.get_state(assessment_id).created_at.strftime("%Y-%m-%d %H:%M:%S")
    code, out, _ = cli(capsys, "list")
    assert code == 0
    header = next(line for line in out.splitlines() if " id " in line)
    for column in ("id", "type", "server", "prio", "state", "progress", "retries", "created"):
        assert f" {column} " in header
    row = next(line for line in out.splitlines() if assessment_id in line)
    assert LONG_SERVER in row and created in row  # whole, unfolded


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize("width", [40, 80])
def test_the_list_table_keeps_every_column_on_a_narrow_terminal(
    capsys: pytest.CaptureFixture[str],
    store: AssessmentStore,
    monkeypatch: pytest.MonkeyPatch,
    width: int,
) -> None:
    store.create_assessment(request(server_name=LONG_SERVER))
    screen = Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)
    monkeypatch.setattr(output, "console", screen)
    assert cli(capsys, "list")[0] == 0
    lines = screen.file.getvalue().splitlines()  # type: ignore[attr-defined]
    # Folded, never cut off: every line ends at the table's right border.
    assert lines and all(line.rstrip()[-1] in "┓┃┩│┘" for line in lines)
    assert all(line.count("┃") == 9 for line in lines if "┃" in line)
    assert max(len(line) for line in lines) <= width


@pytest.mark.usefixtures("cli_env")
def test_markup_in_stored_text_is_printed_as_is(
    capsys: pytest.CaptureFixture[str], store: AssessmentStore
) -> None:
    assessment_id = store.create_assessment(
        request(assessment_type="compliance", server_name="[/]odd[bold]name")
    )
    for argv in (["list"], ["status", assessment_id]):
        code, out, err = cli(capsys, *argv)
        assert code == 0, err
        assert "[/]odd[bold]name" in out
