"""The handler registry: built-ins, plug-ins from the setting, and clear errors."""

from __future__ import annotations

import pytest

from assessment_store.errors import ConfigurationError
from assessment_store.handlers.registry import HandlerRegistry, parse_handler_setting


def test_built_in_types_are_health_security_and_compliance() -> None:
    assert HandlerRegistry.from_setting("").types() == ["compliance", "health", "security"]


def test_the_setting_adds_and_replaces_handlers() -> None:
    registry = HandlerRegistry.from_setting("inventory=json:dumps, health=json:loads")
    assert "inventory" in registry
    assert registry.resolve("inventory").__name__ == "dumps"
    assert registry.resolve("health").__name__ == "loads"


@pytest.mark.parametrize("entry", ["inventory", "inventory=json", "Bad=json:dumps", "x=json:"])
def test_a_malformed_entry_is_refused_naming_the_variable(entry: str) -> None:
    with pytest.raises(ConfigurationError, match="ASSESSMENT_STORE_HANDLERS"):
        parse_handler_setting(entry)


def test_an_unimportable_handler_fails_when_resolved_naming_the_type() -> None:
    registry = HandlerRegistry.from_setting("ghost=no_such_module_here:run")
    with pytest.raises(ConfigurationError, match="ghost"):
        registry.resolve("ghost")
