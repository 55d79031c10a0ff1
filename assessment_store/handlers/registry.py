"""Which assessment types exist and which callable runs each.

Built-in types are named by import path and imported only when first run, so the
store can validate types without importing handler code. ``ASSESSMENT_STORE_HANDLERS``
(``type=module:callable,...``) adds types or replaces built-in ones.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping

from assessment_store.errors import ConfigurationError
from assessment_store.handlers.context import Handler

BUILTIN_HANDLERS: Mapping[str, str] = {
    "health": "assessment_store.handlers.health:run",
    "security": "assessment_store.handlers.security:run",
    "compliance": "assessment_store.handlers.compliance:run",
}
TYPE_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def parse_handler_setting(setting: str) -> dict[str, str]:
    """``type=module:callable,...`` -> {type: "module:callable"}; errors name the entry."""
    parsed: dict[str, str] = {}
    for entry in (part.strip() for part in setting.split(",")):
        if not entry:
            continue
        name, sep, path = (piece.strip() for piece in entry.partition("="))
        if not sep or not TYPE_NAME.match(name) or not IMPORT_PATH.match(path):
            raise ConfigurationError(
                f"ASSESSMENT_STORE_HANDLERS: entry {entry!r} is not type=module:callable "
                "(type: lowercase letters, digits, '_', '.', '-')"
            )
        parsed[name] = path
    return parsed


class HandlerRegistry:
    """Assessment type -> handler import path, resolved to a callable on first use."""

    def __init__(self, paths: Mapping[str, str]) -> None:
        self._paths = dict(paths)
        self._resolved: dict[str, Handler] = {}

    @classmethod
    def from_setting(cls, setting: str) -> HandlerRegistry:
        """Built-ins overlaid with the setting's entries."""
        return cls({**BUILTIN_HANDLERS, **parse_handler_setting(setting)})

    def types(self) -> list[str]:
        """The accepted assessment types, sorted."""
        return sorted(self._paths)

    def __contains__(self, assessment_type: object) -> bool:
        return assessment_type in self._paths

    def register(self, assessment_type: str, handler: Handler) -> None:
        """Register a callable directly (tests, embedding applications)."""
        if not TYPE_NAME.match(assessment_type):
            raise ValueError(f"assessment type {assessment_type!r} is not a valid type name")
        self._paths[assessment_type] = f"<registered {handler!r}>"
        self._resolved[assessment_type] = handler

    def resolve(self, assessment_type: str) -> Handler:
        """The callable for a type, importing it on first use."""
        if assessment_type in self._resolved:
            return self._resolved[assessment_type]
        path = self._paths[assessment_type]
        module_name, _, attribute = path.partition(":")
        try:
            handler = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise ConfigurationError(
                f"handler for {assessment_type!r} ({path}) cannot be imported: {exc}"
            ) from exc
        if not callable(handler):
            raise ConfigurationError(f"handler for {assessment_type!r} ({path}) is not callable")
        self._resolved[assessment_type] = handler
        return handler  # type: ignore[no-any-return]
