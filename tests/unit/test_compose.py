"""docker-compose.yml cannot run here (no container engine): check what it says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from assessment_store.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_the_data_services_have_health_checks_and_the_app_waits_for_them() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "migrate"} <= set(services)
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_migration_runs_alembic_to_head() -> None:
    assert compose()["services"]["migrate"]["command"] == ["alembic", "upgrade", "head"]


def test_every_app_variable_is_a_real_setting() -> None:
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    for name, service in compose()["services"].items():
        for variable in service.get("environment", {}):
            if variable.startswith(ENV_PREFIX):
                assert variable in known, f"{name}: {variable} is not a setting"


def test_the_image_runs_as_a_non_root_user_with_a_health_check() -> None:
    dockerfile = (ROOT / "ops" / "Dockerfile").read_text()
    assert "\nUSER " in dockerfile and "USER root" not in dockerfile
    assert "HEALTHCHECK" in dockerfile
