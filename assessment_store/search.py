"""Text search over the list (``GET /v1/assessments?q=``, ``search_assessments``).

A search is the list with one more filter, ``q``: it combines with every other
filter, the owner rule and keyset pagination, and reads from the replica like any
list. The SQL, its index and how short queries are answered are in
``db/text_search``.
"""

from __future__ import annotations

from pydantic import ValidationError

from assessment_store.errors import InvalidInputError
from assessment_store.models import AssessmentFilters


def search_filters(query: object, filters: AssessmentFilters | None) -> AssessmentFilters:
    """``filters`` (the defaults when None) searching for ``query``, which replaces any
    ``q`` they held; InvalidInputError naming ``q`` when the query is not one
    (empty, over MAX_SEARCH_CHARS, holding control characters, not a string)."""
    try:
        checked = AssessmentFilters.model_validate({"q": query})
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        raise InvalidInputError("q", message, query) from None
    if checked.q is None:
        raise InvalidInputError("q", "must be a non-empty string", query)
    return (filters or AssessmentFilters()).model_copy(update={"q": checked.q})
