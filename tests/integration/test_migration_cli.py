"""``assessment-store migration``: overrides written by the command line reach another
process's facade within seconds; status shows what get_migration_status() returns;
bad values are one line and a non-zero exit."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import typer

from assessment_store import AssessmentStore, AssessmentStoreMigration, EventEmitterBackend
from assessment_store.cli import app, run
from assessment_store.config import Settings, get_settings
from assessment_store.migration import routes_to_store
from tests.factories import request
from tests.waiting import wait_until


@pytest.fixture
def migration_cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ASSESSMENT_STORE_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ASSESSMENT_STORE_REDIS_URL", settings.redis_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def legacy_counts(status: dict[str, object]) -> tuple[object, object]:
    legacy: dict[str, object] = status["legacy"]  # type: ignore[assignment]
    return legacy["held"], legacy["inFlight"]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = run(typer.main.get_command(app), ["migration", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.usefixtures("migration_cli")
def test_an_override_reaches_a_running_facade_within_seconds(
    store: AssessmentStore, capsys: pytest.CaptureFixture[str]
) -> None:
    with AssessmentStoreMigration(store) as facade:  # the default 2 s refresh
        assert facade.configuration().percentage == 100
        code, out, err = cli(capsys, "set", "--percentage", "0", "--by", "ops-alice")
        assert (code, err) == (0, "")
        assert "percentage: 100 -> 0" in out
        written = time.monotonic()
        wait_until(
            lambda: facade.configuration().percentage == 0,
            timeout=5,
            message="the facade did not pick the override up within 5 s",
        )
        assert time.monotonic() - written < 3.0
        assert facade.configuration().overrides["percentage"].updated_by == "ops-alice"
        assert facade.legacy.holds(facade.create_assessment(request()))

        code, out, _ = cli(capsys, "set", "--percentage", "60", "--legacy-fallback", "on")
        assert code == 0
        wait_until(
            lambda: facade.configuration().percentage == 60,
            timeout=5,
            message="the second override was not picked up",
        )
        assert facade.configuration().legacy_fallback is True
        assessment_id = facade.create_assessment(request())
        assert facade.legacy.holds(assessment_id) is not routes_to_store(assessment_id, 60)

        code, out, _ = cli(capsys, "reset", "--setting", "percentage")
        assert code == 0 and "removed percentage" in out
        wait_until(
            lambda: facade.configuration().percentage == 100,
            timeout=5,
            message="the reset was not picked up",
        )
        assert facade.configuration().legacy_fallback is True  # still overridden


@pytest.mark.usefixtures("migration_cli")
def test_status_shows_every_process_legacy_work(
    store: AssessmentStore, capsys: pytest.CaptureFixture[str]
) -> None:
    legacy = EventEmitterBackend(store.settings, handlers=store.handlers, autostart=False)
    with AssessmentStoreMigration(store, legacy, refresh_seconds=0.2) as facade:
        facade.set_overrides({"percentage": 0}, updated_by="test")
        held = [facade.create_assessment(request()) for _ in range(2)]
        facade.set_overrides({"percentage": 100}, updated_by="test")
        facade.create_assessment(request())

        def reported() -> dict[str, object]:
            code, out, _ = cli(capsys, "status", "--json")
            assert code == 0
            parsed: dict[str, object] = json.loads(out)
            return parsed

        # The command line is another facade: it knows of this one's legacy work only
        # from the report this one's background thread writes.
        wait_until(
            lambda: legacy_counts(reported()) == (2, 2),
            timeout=5,
            message=lambda: f"status: {reported()}",
        )
        shown = reported()
        mine = facade.get_migration_status().to_wire()
        for key in ("percentage", "enableStore", "legacyFallback", "storeShare", "store"):
            assert shown[key] == mine[key]
        assert shown["complete"] is False and mine["complete"] is False
        assert (mine["legacy"]["held"], mine["legacy"]["inFlight"]) == (2, 2)
        store_side: dict[str, object] = shown["store"]  # type: ignore[assignment]
        assert (store_side["held"], store_side["inFlight"]) == (1, 1)

        code, out, _ = cli(capsys, "status")
        assert code == 0
        assert "legacy: held 2, in flight 2 (pending 2); 1 process(es) reporting" in out
        assert "migration complete: no" in out

        legacy.run_pending()
        wait_until(
            lambda: reported()["complete"] is True,
            timeout=5,
            message=lambda: f"status: {reported()}",
        )
        assert all(facade.get_state(i).state == "completed" for i in held)
    # Closed: its report is gone.
    assert reported()["legacy"]["reporters"] == []  # type: ignore[index]
    legacy.close()


@pytest.mark.usefixtures("migration_cli")
@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["set", "--percentage", "101"], "percentage: must be a whole number from 0 to 100"),
        (["set", "--percentage", "-5"], "percentage: must be a whole number from 0 to 100"),
        (["set", "--percentage", "half"], "Invalid value for '--percentage'"),
        (["set", "--legacy-fallback", "maybe"], "legacyFallback: must be on or off"),
        (["set", "--enable-store", "yes"], "enableStore: must be on or off"),
        (["set"], "give --percentage, --legacy-fallback or --enable-store"),
        (["reset", "--setting", "colour"], "setting: must be one of"),
    ],
)
def test_bad_values_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], store: AssessmentStore, argv: list[str], needle: str
) -> None:
    code, out, err = cli(capsys, "set", "--percentage", "30")
    assert code == 0
    code, out, err = cli(capsys, *argv)
    assert code == 2, (out, err)
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    code, out, _ = cli(capsys, "status", "--json")
    assert json.loads(out)["percentage"] == 30  # nothing written


def test_an_unmigrated_or_unreachable_database_exits_3(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "ASSESSMENT_STORE_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:1/nowhere"
    )
    get_settings.cache_clear()
    try:
        code, _, err = cli(capsys, "status")
    finally:
        get_settings.cache_clear()
    assert code == 3
    assert err.startswith("error: PostgreSQL is unreachable") and "Traceback" not in err
