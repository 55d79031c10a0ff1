"""A list's filters from query parameters: the rules are AssessmentFilters' (the ones
``assessment-store list`` applies too), the errors name the parameters as sent. Shared
by ``GET /v1/assessments`` and the dashboard, whose URLs carry the same parameters."""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from assessment_store.models import FILTER_QUERY_NAMES, AssessmentFilters


def filters_from_query(values: dict[str, Any]) -> AssessmentFilters:
    """``values`` by AssessmentFilters' wire names; RequestValidationError naming the
    query parameter of each problem."""
    try:
        return AssessmentFilters.model_validate(values)
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {**error, "loc": ("query", *_query_location(error["loc"]))}
                for error in exc.errors(include_url=False, include_input=False)
            ]
        ) from None


def _query_location(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    if loc and loc[0] in FILTER_QUERY_NAMES:
        return (FILTER_QUERY_NAMES[str(loc[0])], *loc[1:])
    return loc
