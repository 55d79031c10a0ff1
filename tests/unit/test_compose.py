"""docker-compose.yml cannot run here (no container engine): check what it says against
the command line and the settings it drives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

from assessment_store.cli import app
from assessment_store.config import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
KNOWN_VARIABLES = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def cli_commands() -> dict[str, set[str]]:
    """Each assessment-store command and the long options it accepts."""
    group = typer.main.get_command(app)
    commands: dict[str, set[str]] = {}
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        commands[name] = {opt for p in command.params for opt in getattr(p, "opts", [])}
    return commands


def test_the_system_has_every_part_the_issue_asks_for() -> None:
    services = compose()["services"]
    assert {"postgres", "redis", "migrate", "api", "beat", "flower", "prometheus"} <= set(services)
    workers = [name for name in services if name.startswith("worker-")]
    queues = {services[w]["command"][services[w]["command"].index("--queues") + 1] for w in workers}
    assert {"assessments.high", "assessments.normal"} <= queues
    assert any("assessments.low" in q and "maintenance" in q for q in queues)


def test_the_data_services_have_health_checks_and_the_app_waits_for_the_migration() -> None:
    services = compose()["services"]
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["api"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )


def test_every_app_command_is_a_real_cli_command_with_real_options() -> None:
    commands = cli_commands()
    for name, service in compose()["services"].items():
        command = service.get("command")
        if not command or command[0] != "assessment-store":
            continue
        sub = command[1]
        assert sub in commands, f"{name}: no command {sub!r}"
        options = {arg.split("=")[0] for arg in command[2:] if arg.startswith("--")}
        passthrough = {"--hostname", "--schedule"}  # handed on to Celery
        assert options - passthrough <= commands[sub], f"{name}: {options - commands[sub]}"


def test_every_app_variable_is_a_real_setting() -> None:
    for name, service in compose()["services"].items():
        for variable in service.get("environment", {}):
            if variable.startswith(ENV_PREFIX):
                assert variable in KNOWN_VARIABLES, f"{name}: {variable} is not a setting"


def test_there_is_exactly_one_beat() -> None:
    services = compose()["services"]
    beats = [
        n
        for n, s in services.items()
        if (s.get("command") or [])[:2] == ["assessment-store", "beat"]
    ]
    assert beats == ["beat"]
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1


def test_the_image_runs_as_a_non_root_user_with_a_health_check() -> None:
    dockerfile = (ROOT / "ops" / "Dockerfile").read_text()
    assert "\nUSER " in dockerfile and "USER root" not in dockerfile
    assert "HEALTHCHECK" in dockerfile
