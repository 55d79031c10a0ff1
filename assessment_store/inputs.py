"""Validation of plain arguments of the Python API (requests are pydantic models)."""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from assessment_store.errors import InvalidInputError

MAX_MESSAGE_CHARS = 4000
# One cap for an error message, wherever it comes from (a handler, the API, rescue):
# longer ones are cut, marked, never refused (a failure must always be recordable).
MAX_ERROR_CHARS = 4000
TRUNCATION_MARK = " ... (truncated)"
MAX_ID_CHARS = 255


def text_problem(text: str) -> str | None:
    """Why PostgreSQL could not store ``text`` (a NUL, a lone surrogate), or None."""
    if "\x00" in text:
        return "must not contain NUL (\\x00) characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates)"
    return None


# Characters that reorder or hide text when displayed (the Unicode bidirectional
# controls and marks): "evil\u202ekcom" shows as another name than it is.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def hidden_character_problem(text: str) -> str | None:
    """Why ``text`` is not plain printable text (a control or bidi character), or None."""
    for index, char in enumerate(text):
        if char in BIDI_CONTROLS:
            return (
                f"must not contain bidirectional control characters (U+{ord(char):04X} at {index})"
            )
        if unicodedata.category(char) == "Cc":
            return f"must not contain control characters (U+{ord(char):04X} at {index})"
    return None


def check_progress(progress: object) -> int:
    """An integer percentage 0-100 (bools and fractions refused)."""
    if isinstance(progress, bool) or not isinstance(progress, int | float):
        raise InvalidInputError("progress", "must be a number from 0 to 100", progress)
    if isinstance(progress, float) and (math.isnan(progress) or not progress.is_integer()):
        raise InvalidInputError("progress", "must be a whole number from 0 to 100", progress)
    if not 0 <= progress <= 100:
        raise InvalidInputError("progress", "must be between 0 and 100", progress)
    return int(progress)


def check_text(field: str, value: object, *, max_chars: int, required: bool) -> str | None:
    """Optional (or required) text of bounded length."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidInputError(field, "must be a non-empty string", value)
    if len(value) > max_chars:
        raise InvalidInputError(field, f"must be at most {max_chars} characters", len(value))
    problem = text_problem(value)
    if problem:
        raise InvalidInputError(field, problem, value)
    return value


def clip_error(field: str, value: object) -> str:
    """A required error text, cut to MAX_ERROR_CHARS (marked) when longer."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(field, "must be a non-empty string", value)
    if len(value) > MAX_ERROR_CHARS:
        value = value[: MAX_ERROR_CHARS - len(TRUNCATION_MARK)] + TRUNCATION_MARK
    problem = text_problem(value)
    if problem:
        raise InvalidInputError(field, problem, value)
    return value


def check_result(result: object) -> dict[str, Any]:
    """A JSON object (dict or pydantic model) to store as result_data."""
    if isinstance(result, BaseModel):
        result = result.model_dump(mode="json", by_alias=True)
    if not isinstance(result, Mapping):
        raise InvalidInputError("result", "must be a JSON object (a dict)", type(result).__name__)
    try:
        # Round-trip now so a value JSON cannot hold fails here, naming the field,
        # instead of deep in the driver.
        encoded = json.dumps(dict(result), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError("result", f"must be JSON-serialisable: {exc}", "...") from None
    if "\\u0000" in encoded:
        raise InvalidInputError("result", "must not contain NUL characters", "...")
    try:  # a lone surrogate: JSONB refuses it (a driver error otherwise)
        json.dumps(dict(result), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(
            "result", "must be valid Unicode (no lone surrogates)", "..."
        ) from None
    decoded: dict[str, Any] = json.loads(encoded)
    return decoded


def check_positive(field: str, value: object) -> float:
    """A finite number above zero."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(field, "must be a finite number", value)
    if value <= 0:
        raise InvalidInputError(field, "must be above zero", value)
    return float(value)


def check_count(field: str, value: object) -> int:
    """A non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(field, "must be a whole number >= 0", value)
    return value


def over_seconds_limit(value: float, limit: float) -> str:
    """The refusal of a duration over ``limit`` seconds, saying the unit, and hinting
    when the value reads as milliseconds (the seeds' unit) of an acceptable duration."""
    problem = f"must be at most {limit:g} seconds (the unit is seconds"
    if value / 1000 <= limit:
        problem += f"; {value:g} looks like milliseconds: {value / 1000:g} seconds?"
    return problem + ")"


def check_expected_version(value: object) -> int | None:
    """An optional version to compare against: a whole number >= 1 (bools refused)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError("expectedVersion", "must be a whole number >= 1", value)
    return value


MAX_STATS_WINDOW_SECONDS = 86_400  # rates over at most a day


def check_window_seconds(field: str, value: object) -> int:
    """The window of the stats' rates: whole seconds, 1 to a day."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not (1 <= value <= MAX_STATS_WINDOW_SECONDS)
    ):
        raise InvalidInputError(
            field, f"must be a whole number of seconds from 1 to {MAX_STATS_WINDOW_SECONDS}", value
        )
    return value


def check_lookup_id(assessment_id: object) -> str:
    """An id to look up: a string PostgreSQL can compare (no NUL, at most 255 chars)."""
    if not isinstance(assessment_id, str) or not assessment_id:
        raise InvalidInputError("assessmentId", "must be a non-empty string", assessment_id)
    problem = text_problem(assessment_id)
    if problem:
        raise InvalidInputError("assessmentId", problem, assessment_id)
    if len(assessment_id) > MAX_ID_CHARS:
        raise InvalidInputError(
            "assessmentId", f"must be at most {MAX_ID_CHARS} characters", assessment_id
        )
    return assessment_id
