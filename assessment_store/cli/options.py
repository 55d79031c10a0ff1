"""Options with an HTTP API counterpart, validated by the API's own rules.

The API lets FastAPI turn the query string into numbers and then validates with the
shared models; the CLI lets typer turn argv into numbers and hands them to the same
models and checks. So both refuse the same values, and name the field as the API
does (``type``, ``createdAfter``, ``window``), never one of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError
from pydantic_core import InitErrorDetails

from assessment_store.errors import InvalidInputError
from assessment_store.jsonlines import BadLineError, parse_line
from assessment_store.models import FILTER_QUERY_NAMES, AssessmentFilters


def _renamed(exc: ValidationError, names: Mapping[str, str]) -> ValidationError:
    """``exc`` with each error's field called by its query name."""
    details: list[InitErrorDetails] = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        detail = InitErrorDetails(
            type=error["type"],
            loc=(names.get(str(loc[0]), loc[0]), *loc[1:]) if loc else loc,
            input=error["input"],
        )
        if "ctx" in error:
            detail["ctx"] = error["ctx"]
        details.append(detail)
    return ValidationError.from_exception_data(exc.title, details)


def list_filters(values: Mapping[str, Any]) -> AssessmentFilters:
    """AssessmentFilters from the list options (wire names), checked as the API does.

    Datetimes are given as text: the model parses ISO 8601 and refuses one without a
    timezone, as the API does (typer's own datetime type can express no timezone)."""
    try:
        return AssessmentFilters.model_validate(dict(values))
    except ValidationError as exc:
        raise _renamed(exc, FILTER_QUERY_NAMES) from None


def json_option(name: str, text: str | None) -> object:
    """The JSON value of option ``name`` (None when not given)."""
    if text is None:
        return None
    try:
        return parse_line(text)
    except BadLineError as exc:
        raise InvalidInputError(name, str(exc), text) from None
