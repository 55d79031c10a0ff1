"""Changing one assessment: claim, progress, complete, fail, cancel.

Every change goes through :meth:`AssessmentChanges._transition`, one compare-and-set
statement that bumps the version and writes the audit row, so each version gets
exactly one audit row in the same transaction. Mixed into AssessmentStore.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, RowMapping

from assessment_store import metrics
from assessment_store.backoff import retry_delay_seconds
from assessment_store.cache import StateCache
from assessment_store.config import Settings
from assessment_store.db import repository
from assessment_store.errors import (
    AssessmentNotFoundError,
    InvalidStateTransitionError,
    VersionConflictError,
)
from assessment_store.inputs import (
    MAX_ERROR_CHARS,
    MAX_MESSAGE_CHARS,
    check_lookup_id,
    check_progress,
    check_result,
    check_text,
)
from assessment_store.models import Assessment
from assessment_store.states import (
    AssessmentEvent,
    AssessmentState,
    is_allowed,
    sources_of,
    target_of,
)

SYSTEM_ACTOR = "system"
ValuesFor = Callable[[RowMapping], Mapping[str, object]]


def to_assessment(row: RowMapping) -> Assessment:
    """A repository row as the public model."""
    return Assessment.model_validate(dict(row))


class AssessmentChanges:
    """The state-changing half of the Python API."""

    settings: Settings
    cache: StateCache | None

    def transaction(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError  # provided by AssessmentStore

    def _transition(
        self,
        assessment_id: str,
        event: AssessmentEvent,
        values: Mapping[str, object] | ValuesFor,
        *,
        changed_by: str,
        reason: str,
        expected_version: int | None,
        owner: str | None = None,
        lease: repository.LeaseStep | None = None,
        lease_worker: str | None = None,
    ) -> Assessment:
        """The one path for every change: check, then compare-and-set with audit.

        An event with a single source state whose new values do not depend on the
        current row needs no read first: the compare-and-set's guard is the check, and
        only a refusal costs a second query (to say why). Otherwise the row is read,
        checked against the transition table, and changed under a version guard.
        """
        assessment_id = check_lookup_id(assessment_id)
        sources = sources_of(event)
        with self.transaction() as conn:
            if len(sources) == 1 and owner is None and not callable(values):
                [source] = sources
                assert source is not None
                version_guard = expected_version
                current = source
                new_values = values
            else:
                # Locked: a concurrent change (a progress report, a claim) waits for us
                # or goes first, instead of failing our write as a stale version.
                row = repository.fetch_assessment(
                    conn, assessment_id, created_by=owner, for_update=True
                )
                if row is None:
                    raise AssessmentNotFoundError(assessment_id)
                current = AssessmentState(row["state"])
                if expected_version is not None and row["version"] != expected_version:
                    raise VersionConflictError(assessment_id, expected_version, row["version"])
                if not is_allowed(current, event):
                    raise InvalidStateTransitionError(assessment_id, current, target_of(event))
                version_guard = row["version"]
                new_values = values(row) if callable(values) else values
            change = repository.Change(
                assessment_id=assessment_id,
                expected_version=version_guard,
                expected_state=current,
                event=event,
                values={"state": target_of(event), **new_values},
                changed_by=changed_by,
                change_reason=reason,
                lease=lease,
                lease_worker=lease_worker,
                lease_seconds=self.settings.lease_seconds,
            )
            changed = repository.compare_and_set(conn, change)
            if changed is None:
                raise self._explain_refusal(conn, assessment_id, event, expected_version)
        if event is not AssessmentEvent.PROGRESS:
            metrics.TRANSITIONS.labels(current.value, target_of(event).value).inc()
        assessment = to_assessment(changed)
        if self.cache is not None:
            self.cache.put(assessment)
        return assessment

    @staticmethod
    def _explain_refusal(
        conn: Connection, assessment_id: str, event: AssessmentEvent, expected: int | None
    ) -> Exception:
        """The guard did not match: say why (a stale version first, then the state)."""
        fresh = repository.fetch_assessment(conn, assessment_id)
        if fresh is None:
            return AssessmentNotFoundError(assessment_id)
        if expected is not None and fresh["version"] != expected:
            return VersionConflictError(assessment_id, expected, fresh["version"])
        state = AssessmentState(fresh["state"])
        if not is_allowed(state, event):
            return InvalidStateTransitionError(assessment_id, state, target_of(event))
        # It moved away and back (failed -> pending) between our look and our write.
        return VersionConflictError(assessment_id, expected or fresh["version"], fresh["version"])

    def start_processing(
        self, assessment_id: str, worker_id: str, *, expected_version: int | None = None
    ) -> Assessment:
        """Claim a pending assessment for ``worker_id`` (pending -> processing) with a lease."""
        worker_id = check_text("workerId", worker_id, max_chars=255, required=True) or ""
        return self._transition(
            assessment_id,
            AssessmentEvent.START,
            {"worker_id": worker_id, "started_at": repository.NOW, "progress": 0, "message": None},
            changed_by=worker_id,
            reason=f"claimed by {worker_id}",
            expected_version=expected_version,
            lease=repository.LeaseStep.TAKE,
            lease_worker=worker_id,
        )

    def update_progress(
        self,
        assessment_id: str,
        progress: int,
        message: str | None = None,
        *,
        expected_version: int | None = None,
        changed_by: str | None = None,
    ) -> Assessment:
        """Record progress (0-100) of a processing assessment; audited like any change."""
        percent = check_progress(progress)
        text = check_text("message", message, max_chars=MAX_MESSAGE_CHARS, required=False)
        return self._transition(
            assessment_id,
            AssessmentEvent.PROGRESS,
            {"progress": percent, "message": text},
            changed_by=changed_by or SYSTEM_ACTOR,
            reason=f"progress {percent}%" + (f": {text}" if text else ""),
            expected_version=expected_version,
        )

    def complete_assessment(
        self,
        assessment_id: str,
        result: Mapping[str, Any] | Any,
        *,
        expected_version: int | None = None,
        changed_by: str | None = None,
    ) -> Assessment:
        """Finish a processing assessment successfully with ``result`` as result_data."""
        result_data = check_result(result)
        return self._transition(
            assessment_id,
            AssessmentEvent.COMPLETE,
            {"result_data": result_data, "progress": 100, "completed_at": repository.NOW},
            changed_by=changed_by or SYSTEM_ACTOR,
            reason="completed",
            expected_version=expected_version,
            lease=repository.LeaseStep.RELEASE,
        )

    def fail_assessment(
        self,
        assessment_id: str,
        error: str,
        *,
        permanent: bool = False,
        expected_version: int | None = None,
        changed_by: str | None = None,
    ) -> Assessment:
        """Fail the running attempt. While retries remain (and the failure is not
        ``permanent``) ``next_retry_at`` is set with exponential backoff and jitter."""
        error_text = check_text("error", error, max_chars=MAX_ERROR_CHARS, required=True) or ""

        def values_for(row: RowMapping) -> Mapping[str, object]:
            retries_left = not permanent and row["retry_count"] < self.settings.max_retries
            next_retry_at = None
            if retries_left:
                delay = retry_delay_seconds(
                    row["retry_count"],
                    self.settings.retry_backoff_seconds,
                    self.settings.retry_backoff_max_seconds,
                )
                next_retry_at = datetime.now(UTC) + timedelta(seconds=delay)
            return {
                "error_message": error_text,
                "completed_at": repository.NOW,
                "next_retry_at": next_retry_at,
            }

        kind = "permanent failure" if permanent else "failed"
        return self._transition(
            assessment_id,
            AssessmentEvent.FAIL,
            values_for,
            changed_by=changed_by or SYSTEM_ACTOR,
            reason=f"{kind}: {error_text}",
            expected_version=expected_version,
            lease=repository.LeaseStep.RELEASE,
        )

    def cancel_assessment(
        self,
        assessment_id: str,
        reason: str | None = None,
        *,
        owner: str | None = None,
        expected_version: int | None = None,
        changed_by: str | None = None,
    ) -> Assessment:
        """Cancel a pending or processing assessment; a running handler stops at its next
        progress report and its result is discarded."""
        text = check_text("reason", reason, max_chars=MAX_MESSAGE_CHARS, required=False)
        return self._transition(
            assessment_id,
            AssessmentEvent.CANCEL,
            {"message": text, "completed_at": repository.NOW},
            changed_by=changed_by or owner or SYSTEM_ACTOR,
            reason="cancelled" + (f": {text}" if text else ""),
            expected_version=expected_version,
            owner=owner,
            lease=repository.LeaseStep.RELEASE,
        )
