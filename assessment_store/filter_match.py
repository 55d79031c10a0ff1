"""Whether one assessment is in a list's view: the filters of ``reads.list_assessments``
evaluated in Python, for the dashboard's live updates (a new assessment joins an open
list without a query per open list). tests/integration/test_filter_match.py holds the
two to the same answers."""

from __future__ import annotations

from assessment_store.models import Assessment, AssessmentFilters


def in_view(filters: AssessmentFilters, assessment: Assessment, *, search_errors: bool) -> bool:
    """True when listing with ``filters`` (the keyset position aside) would show it."""
    if filters.states and assessment.state not in filters.states:
        return False
    exact = (
        (filters.assessment_type, assessment.assessment_type),
        (filters.server_name, assessment.server_name),
        (filters.source, assessment.source),
        (filters.created_by, assessment.created_by),
    )
    if any(wanted is not None and wanted != actual for wanted, actual in exact):
        return False
    if filters.created_after is not None and assessment.created_at < filters.created_after:
        return False
    if filters.created_before is not None and assessment.created_at >= filters.created_before:
        return False
    if filters.q is not None:
        fields = [assessment.assessment_id, assessment.server_name or ""]
        if search_errors:
            fields.append(assessment.error_message or "")
        needle = _fold(filters.q)
        return any(needle in _fold(field) for field in fields)
    return True


def _fold(text: str) -> str:
    """Lower case one character at a time, as PostgreSQL's ILIKE does (Python's
    ``str.lower`` turns 'İ' into two characters and a final 'Σ' into 'ς')."""
    return "".join(c.lower()[:1] or c for c in text)
