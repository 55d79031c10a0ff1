"""Settings: defaults, the environment, .env, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from assessment_store.config import DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL, load_settings
from assessment_store.errors import ConfigurationError

VARIABLES = [
    "DATABASE_URL",
    "READ_DATABASE_URL",
    "REDIS_URL",
    "BROKER_URL",
    "JWT_SECRET",
    "HANDLERS",
    "MAX_RETRIES",
    "RETRY_BACKOFF_SECONDS",
    "RETRY_BACKOFF_MAX_SECONDS",
    "LEASE_SECONDS",
    "REDISPATCH_AFTER_SECONDS",
    "MAINTENANCE_INTERVAL_SECONDS",
    "RETENTION_DAYS",
    "ENVIRONMENT",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(f"ASSESSMENT_STORE_{name}", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_match_the_spec() -> None:
    settings = load_settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.redis_url == DEFAULT_REDIS_URL
    assert settings.effective_broker_url == DEFAULT_REDIS_URL
    assert settings.read_database_url is None
    assert settings.max_retries == 3
    assert settings.retry_backoff_seconds < settings.retry_backoff_max_seconds
    assert settings.lease_seconds > 0 and settings.retention_days > 0


def test_environment_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSESSMENT_STORE_MAX_RETRIES", "7")
    monkeypatch.setenv("ASSESSMENT_STORE_BROKER_URL", "redis://127.0.0.1:6379/5")
    settings = load_settings()
    assert settings.max_retries == 7
    assert settings.effective_broker_url == "redis://127.0.0.1:6379/5"


def test_a_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("ASSESSMENT_STORE_LEASE_SECONDS=12.5\n")
    assert load_settings().lease_seconds == 12.5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAX_RETRIES", "-1"),
        ("MAX_RETRIES", "lots"),
        ("LEASE_SECONDS", "0"),
        ("DATABASE_URL", "mysql://localhost/x"),
        ("REDIS_URL", "http://localhost"),
        ("RETENTION_DAYS", "-3"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(f"ASSESSMENT_STORE_{variable}", value)
    with pytest.raises(ConfigurationError, match=f"ASSESSMENT_STORE_{variable}"):
        load_settings()


def test_a_backoff_cap_below_the_base_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSESSMENT_STORE_RETRY_BACKOFF_SECONDS", "60")
    monkeypatch.setenv("ASSESSMENT_STORE_RETRY_BACKOFF_MAX_SECONDS", "10")
    with pytest.raises(ConfigurationError, match="RETRY_BACKOFF_MAX_SECONDS"):
        load_settings()


@pytest.mark.parametrize("secret", [None, "changeme", "  secret ", "too-short-for-hs256"])
def test_production_refuses_a_missing_or_placeholder_jwt_secret(
    monkeypatch: pytest.MonkeyPatch, secret: str | None
) -> None:
    monkeypatch.setenv("ASSESSMENT_STORE_ENVIRONMENT", "production")
    if secret is not None:
        monkeypatch.setenv("ASSESSMENT_STORE_JWT_SECRET", secret)
    with pytest.raises(ConfigurationError, match="ASSESSMENT_STORE_JWT_SECRET"):
        load_settings()


def test_production_accepts_a_real_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSESSMENT_STORE_ENVIRONMENT", "production")
    monkeypatch.setenv("ASSESSMENT_STORE_JWT_SECRET", "x" * 40)
    assert load_settings().environment == "production"
