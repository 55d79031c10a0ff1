"""Random sequences of operations keep the transition table and the audit chain whole."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, text

from assessment_store import (
    AssessmentState,
    AssessmentStore,
    InvalidStateTransitionError,
    VersionConflictError,
)
from assessment_store.states import AssessmentEvent, is_allowed, next_state
from tests.chain import audit_chain_problems
from tests.factories import request

S = AssessmentState


class AssessmentLifecycle(RuleBasedStateMachine):
    """Drives a few assessments at random and mirrors what each should be."""

    store: AssessmentStore
    engine: Engine
    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.model: dict[str, dict[str, Any]] = {}

    @initialize()
    def start_clean(self) -> None:
        self.model = {}

    @rule(target=ids, priority=st.integers(1, 10))
    def create(self, priority: int) -> str:
        assessment_id = self.store.create_assessment(request(priority=priority))
        self.model[assessment_id] = {"state": S.PENDING, "version": 1, "retry_count": 0}
        return assessment_id

    def _apply(self, assessment_id: str, event: AssessmentEvent, call: Any, stale: bool) -> None:
        expected = self.model[assessment_id]
        current = expected["version"]
        # A stale version is one the row is not at (versions start at 1, so the first
        # one's stale neighbour is the next).
        version = (current - 1 or current + 1) if stale else current
        try:
            call(version)
        except VersionConflictError:
            assert stale
            return
        except InvalidStateTransitionError:
            assert not stale and not is_allowed(expected["state"], event)
            return
        assert not stale and is_allowed(expected["state"], event)
        expected["state"] = next_state(expected["state"], event)
        expected["version"] += 1

    @rule(assessment_id=ids, stale=st.booleans())
    def start(self, assessment_id: str, stale: bool) -> None:
        self._apply(
            assessment_id,
            AssessmentEvent.START,
            lambda v: self.store.start_processing(assessment_id, "w", expected_version=v),
            stale,
        )

    @rule(assessment_id=ids, percent=st.integers(0, 100), stale=st.booleans())
    def progress(self, assessment_id: str, percent: int, stale: bool) -> None:
        self._apply(
            assessment_id,
            AssessmentEvent.PROGRESS,
            lambda v: self.store.update_progress(assessment_id, percent, expected_version=v),
            stale,
        )

    @rule(assessment_id=ids, stale=st.booleans())
    def complete(self, assessment_id: str, stale: bool) -> None:
        self._apply(
            assessment_id,
            AssessmentEvent.COMPLETE,
            lambda v: self.store.complete_assessment(assessment_id, {"n": 1}, expected_version=v),
            stale,
        )

    @rule(assessment_id=ids, permanent=st.booleans(), stale=st.booleans())
    def fail(self, assessment_id: str, permanent: bool, stale: bool) -> None:
        self._apply(
            assessment_id,
            AssessmentEvent.FAIL,
            lambda v: self.store.fail_assessment(
                assessment_id, "x", permanent=permanent, expected_version=v
            ),
            stale,
        )

    @rule(assessment_id=ids, stale=st.booleans())
    def cancel(self, assessment_id: str, stale: bool) -> None:
        self._apply(
            assessment_id,
            AssessmentEvent.CANCEL,
            lambda v: self.store.cancel_assessment(assessment_id, expected_version=v),
            stale,
        )

    @rule(max_retries=st.integers(0, 3))
    def batch_retry(self, max_retries: int) -> None:
        retried = set(self.store.batch_retry_failed_assessments(max_retries))
        expected = {
            i
            for i, m in self.model.items()
            if m["state"] is S.FAILED and m["retry_count"] < max_retries
        }
        assert retried == expected
        for assessment_id in retried:
            m = self.model[assessment_id]
            m.update(state=S.PENDING, version=m["version"] + 1, retry_count=m["retry_count"] + 1)

    @invariant()
    def rows_match_the_model_and_chains_are_whole(self) -> None:
        for assessment_id, expected in self.model.items():
            got = self.store.get_state(assessment_id)
            assert (got.state, got.version, got.retry_count) == (
                expected["state"],
                expected["version"],
                expected["retry_count"],
            )
        with self.engine.connect() as conn:
            assert audit_chain_problems(conn) == []


def test_random_operation_sequences_keep_every_invariant(
    store: AssessmentStore, raw_engine: Engine
) -> None:
    # A fresh database per test; each example adds its own assessments to it, and the
    # batch retry of an example must not see failures left by an earlier one.
    def clean_machine() -> AssessmentLifecycle:
        with raw_engine.begin() as conn:
            conn.execute(text("TRUNCATE assessment_states CASCADE"))
        return AssessmentLifecycle()

    AssessmentLifecycle.store = store
    AssessmentLifecycle.engine = raw_engine
    # Hypothesis accepts any factory of machines at runtime; its stub says "a class".
    run_state_machine_as_test(
        clean_machine,  # type: ignore[arg-type]
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            derandomize=True,  # the same sequences every run: no failure met at random
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
