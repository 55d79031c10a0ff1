"""Fixtures of the integration tests: the command line against the test database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer

from assessment_store.cli import app, run
from assessment_store.config import Settings, get_settings, load_settings
from assessment_store.service import AssessmentStore
from tests.databases import create_database, drop_database, unique_name
from tests.factories import quiet_store


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ASSESSMENT_STORE_DATABASE_URL", settings.database_url)
    # Publishing goes to a broker nobody consumes in these tests (a database of its own).
    monkeypatch.setenv("ASSESSMENT_STORE_BROKER_URL", settings.redis_url.rsplit("/", 1)[0] + "/8")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``assessment-store ARGV`` in-process: (exit code, stdout, stderr)."""
    code = run(typer.main.get_command(app), list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def second_store(base_settings: Settings, template_database: str) -> Iterator[AssessmentStore]:
    """A store on a second, migrated, empty database (an import's destination)."""
    name = unique_name("assessment_store_import")
    url = create_database(base_settings.database_url, name, template=template_database)
    store = quiet_store(load_settings(database_url=url))
    yield store
    store.close()
    drop_database(base_settings.database_url, name)
