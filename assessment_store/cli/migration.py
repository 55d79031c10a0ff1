"""``assessment-store migration``: the cut-over's settings, seen and changed at run time.

``migration set`` stores overrides in the database (``migration_overrides``); every
running process picks them up within MIGRATION_REFRESH_SECONDS, no restart.
``migration status`` shows what ``AssessmentStoreMigration.get_migration_status()``
returns; ``migration reset`` drops overrides so the configured MIGRATION_* hold again.
"""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from assessment_store.cli.output import console, print_json
from assessment_store.dispatch import NullDispatcher
from assessment_store.errors import InvalidInputError
from assessment_store.migration import overrides
from assessment_store.migration.emitter import EventEmitterBackend
from assessment_store.migration.facade import AssessmentStoreMigration
from assessment_store.migration.status import MigrationStatus, SideStatus
from assessment_store.service import AssessmentStore

SWITCH_VALUES = {"on": True, "off": False}

migration_app = typer.Typer(
    name="migration",
    help="The move off the legacy event system: status, and run-time settings.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", metavar="", help="Print JSON.")]
SwitchOption = Annotated[str | None, typer.Option(metavar="<on|off>")]


def register(app: typer.Typer) -> None:
    app.add_typer(migration_app, name="migration")


def _store() -> AssessmentStore:
    return AssessmentStore(application_name="assessment-store-cli", dispatcher=NullDispatcher())


def _switch(name: str, value: str | None) -> bool | None:
    if value is None:
        return None
    chosen = SWITCH_VALUES.get(value.strip().lower())
    if chosen is None:
        raise InvalidInputError(name, "must be on or off", value)
    return chosen


def _default_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in this environment (a container)
        return "cli"


@migration_app.command()
def status(as_json: JsonOption = False) -> None:
    """Settings in force, where each comes from, and what each side holds."""
    with _store() as store:
        legacy = EventEmitterBackend(store.settings, handlers=store.handlers, autostart=False)
        with AssessmentStoreMigration(store, legacy, background=False) as facade:
            report = facade.get_migration_status()
        legacy.close(timeout=0)
    if as_json:
        print_json(report.to_wire())
    else:
        _print_status(report)


@migration_app.command(name="set")
def set_command(
    percentage: Annotated[
        int | None, typer.Option(metavar="<0-100>", help="share of new work for the store")
    ] = None,
    legacy_fallback: SwitchOption = None,
    enable_store: SwitchOption = None,
    by: Annotated[str | None, typer.Option(help="who is changing it (for the record)")] = None,
    as_json: JsonOption = False,
) -> None:
    """Override settings in every running process (within seconds, no restart)."""
    values: dict[str, object] = {}
    if percentage is not None:
        values[overrides.PERCENTAGE] = percentage
    for setting, name, text in (
        (overrides.LEGACY_FALLBACK, "legacyFallback", legacy_fallback),
        (overrides.ENABLE_STORE, "enableStore", enable_store),
    ):
        switch = _switch(name, text)
        if switch is not None:
            values[setting] = switch
    if not values:
        raise InvalidInputError(
            "settings", "give --percentage, --legacy-fallback or --enable-store", "nothing"
        )
    for setting, value in values.items():
        overrides.check_value(setting, value)  # all refused before anything is written
    with _store() as store:
        before = overrides.read(store.runtime)
        after = overrides.write(store.runtime, values, updated_by=by or _default_actor())
        refresh = store.settings.migration_refresh_seconds
    if as_json:
        print_json({"before": _settings(before), "after": _settings(after)})
        return
    for setting, value in sorted(_settings(after).items()):
        old = _settings(before)[setting]
        change = f"{_shown(old)} -> {_shown(value)}" if old != value else f"{_shown(value)}"
        console.print(f"{setting}: {change}", markup=False, highlight=False)
    console.print(
        f"every running process applies this within {refresh:g}s "
        f"(new work to the store: {after.store_share}%)",
        markup=False,
        highlight=False,
    )


@migration_app.command()
def reset(
    setting: Annotated[
        list[str] | None,
        typer.Option(help="percentage, legacy_fallback or enable_store (repeatable); all"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Drop overrides: the configured MIGRATION_* settings hold again."""
    with _store() as store:
        removed = overrides.clear(store.runtime, setting or None)
        after = overrides.read(store.runtime)
    if as_json:
        print_json({"removed": removed, "after": _settings(after)})
        return
    console.print(
        f"removed {', '.join(removed) or 'no'} override(s); now {after.describe()}",
        markup=False,
        highlight=False,
    )


def _settings(config: overrides.MigrationConfig) -> dict[str, object]:
    return {
        "percentage": config.percentage,
        "legacyFallback": config.legacy_fallback,
        "enableStore": config.enable_store,
    }


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _side(name: str, side: SideStatus) -> str:
    states = ", ".join(f"{state} {n}" for state, n in side.by_state.items() if n) or "none"
    return f"{name}: held {side.held}, in flight {side.in_flight} ({states})"


def _print_status(report: MigrationStatus) -> None:
    lines = [
        f"new work to the store: {report.store_share}% (percentage {report.percentage}, "
        f"store {_shown(report.enable_store)}, legacy fallback {_shown(report.legacy_fallback)})",
    ]
    for name, override in report.overrides.items():
        lines.append(
            f"  overridden: {name} = {_shown(override.value)} by {override.updated_by} "
            f"at {override.updated_at:%Y-%m-%d %H:%M:%S %Z}"
        )
    if not report.overrides:
        lines.append("  no overrides: the configured MIGRATION_* settings hold")
    lines.append(_side("store", report.store))
    fresh = sum(1 for r in report.legacy.reporters if not r.stale)
    lines.append(_side("legacy", report.legacy) + f"; {fresh} process(es) reporting")
    if report.legacy.lost_in_flight:
        lines.append(
            f"  lost: {report.legacy.lost_in_flight} legacy assessment(s) in flight in "
            "processes that stopped reporting"
        )
    lines.append(f"migration complete: {'yes' if report.complete else 'no'}")
    for line in lines:
        console.print(line, markup=False, highlight=False)
