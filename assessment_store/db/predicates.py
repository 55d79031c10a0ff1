"""The policy's definitions of "dead letter" and "finished", as SQL conditions.

Built from ``assessment_store.policy`` so the database and Python can never disagree
(tests/unit/test_policy.py checks every state against both).
"""

from __future__ import annotations

from typing import Final

from assessment_store.policy import FINAL_STATES
from assessment_store.states import AssessmentState

_FINAL: Final = ", ".join(f"'{state.value}'" for state in sorted(FINAL_STATES))

# Failed with no automatic retry coming (policy.is_dead_letter).
DEAD_LETTER: Final = f"(state = '{AssessmentState.FAILED.value}' AND next_retry_at IS NULL)"
# Completed, cancelled, or a dead letter (policy.is_finished).
FINISHED: Final = f"(state IN ({_FINAL}) OR {DEAD_LETTER})"
