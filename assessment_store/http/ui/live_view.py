"""What one dashboard stream shows of a batch of changes, as an SSE message.

A row's HTML depends only on the row, so it is rendered once per (id, version) for all
streams (ROW_CACHE); a list message depends on who watches (owner) and how (filters),
so it is encoded once per batch for all the streams that share both.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from assessment_store.filter_match import in_view
from assessment_store.http.auth import Principal
from assessment_store.http.ui.render import render
from assessment_store.live import ChangeBatch
from assessment_store.models import Assessment, AssessmentFilters

ROW_CACHE_SIZE = 10_000
_rows: OrderedDict[tuple[str, int], str] = OrderedDict()


def row_html(assessment: Assessment) -> str:
    """The list row of ``assessment`` (memoised by id and version: a version is never
    reused, so the rendering never goes stale)."""
    key = (assessment.assessment_id, assessment.version)
    html = _rows.get(key)
    if html is None:
        html = _rows[key] = render("_row.html", a=assessment)
        if len(_rows) > ROW_CACHE_SIZE:
            _rows.popitem(last=False)
    return html


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


@dataclass(frozen=True)
class View:
    """What one stream shows."""

    principal: Principal
    assessment_id: str | None  # one assessment's page, or a list
    filters: AssessmentFilters | None
    csrf: str
    search_errors: bool

    @cached_property
    def list_key(self) -> tuple[object, ...]:
        """Streams with the same key get the same list messages."""
        filters = self.filters.model_dump_json() if self.filters else None
        return ("list", self.principal.owner, filters, self.search_errors)

    def message(self, batch: ChangeBatch) -> str | None:
        """The SSE message for ``batch``, or None when nothing in it concerns us."""
        if self.assessment_id is not None:
            found = batch.assessments.get(self.assessment_id)
            if found is None or not self._may_see(found):
                return None
            return self._record_message(batch, found)
        if self.list_key in batch.rendered:
            return batch.rendered[self.list_key] or None
        message = self._list_message(batch.visible_to(self.principal.owner))
        batch.rendered[self.list_key] = message or ""
        return message

    def _may_see(self, assessment: Assessment) -> bool:
        owner = self.principal.owner
        return owner is None or assessment.created_by == owner

    def _record_message(self, batch: ChangeBatch, found: Assessment) -> str:
        entries = [e for e in batch.entries if e.assessment_id == found.assessment_id]
        record = render("_record.html", a=found, principal=self.principal, csrf=self.csrf)
        audit = [render("_audit_row.html", e=e) for e in entries]
        payload = {
            "records": [
                {
                    "assessmentId": found.assessment_id,
                    "version": found.version,
                    "state": found.state.value,
                    "html": record,
                    "audit": [
                        {"version": e.version_to, "html": h}
                        for e, h in zip(entries, audit, strict=True)
                    ],
                }
            ]
        }
        return sse("changes", payload, batch.watermark)

    def _list_message(self, batch: ChangeBatch) -> str | None:
        filters = self.filters
        if not batch.assessments or filters is None:
            return None
        created = {e.assessment_id for e in batch.entries if e.event == "create"}
        first_page = filters.cursor is None
        rows = []
        for assessment in batch.assessments.values():
            html = row_html(assessment)
            insert = (
                first_page
                and assessment.assessment_id in created
                and in_view(filters, assessment, search_errors=self.search_errors)
            )
            rows.append(
                {
                    "assessmentId": assessment.assessment_id,
                    "version": assessment.version,
                    "state": assessment.state.value,
                    "createdAt": assessment.created_at.isoformat(),
                    "insert": insert,
                    "html": html,
                }
            )
        rows.sort(key=lambda r: (r["createdAt"], r["assessmentId"]))
        return sse("changes", {"rows": rows}, batch.watermark)
