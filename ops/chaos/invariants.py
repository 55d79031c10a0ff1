"""The invariants every fault must leave intact, checked with plain SQL.

- Nothing lost: every assessment is finished (completed, cancelled, or failed with no
  retry coming: a dead letter) once the system has settled.
- Nothing done twice: exactly one transition into completed or cancelled for an
  assessment in that state (and never both, nor twice); at most one execution of the
  handler per attempt (the ``chaos_executions`` side table); a completion written by
  a worker names the execution of this very attempt.
- Every audit chain whole (tests/chain.py's check, the one definition of it).
- No processing row orphaned: each holds a live lease of its own worker (``grace``
  allows for the rescue job's reaction time mid-run), and no finished row keeps one.

The audit-chain check is imported from tests/chain.py rather than written a second
time: it is plain SQL and Python with no test machinery, and two definitions of the
chain invariant could drift apart. It is the one thing ops.chaos takes from tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from tests.chain import audit_chain_problems

FINISHED_SQL = (
    "(s.state IN ('completed', 'cancelled') OR (s.state = 'failed' AND s.next_retry_at IS NULL))"
)


@dataclass
class Findings:
    """What one check found; every list holds assessment ids or problem lines."""

    total: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    unfinished: list[str] = field(default_factory=list)
    duplicated: dict[str, str] = field(default_factory=dict)  # id -> what was doubled
    broken_chains: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    unreleased_leases: list[str] = field(default_factory=list)

    def problems(self, *, settled: bool = True) -> list[str]:
        """Human-readable lines, empty when every invariant holds (``settled``: also
        require every assessment finished)."""
        lines = [f"duplicated {aid}: {why}" for aid, why in sorted(self.duplicated.items())]
        lines += [f"broken chain: {line}" for line in self.broken_chains]
        lines += [f"orphaned processing row: {aid}" for aid in self.orphaned]
        lines += [f"lease not released: {aid}" for aid in self.unreleased_leases]
        if settled:
            lines += [f"unfinished (lost): {aid}" for aid in self.unfinished]
        return lines


def _ids(rows: Iterable[object]) -> list[str]:
    return sorted(str(row) for row in rows)


def check(conn: Connection, *, orphan_grace_seconds: float = 0.0) -> Findings:
    """Check every invariant on the database behind ``conn`` (read-only)."""
    found = Findings()
    for state, count in conn.execute(
        text("SELECT state::text, count(*) FROM assessment_states GROUP BY 1")
    ):
        found.by_state[str(state)] = int(count)
    found.total = sum(found.by_state.values())
    found.unfinished = _ids(
        conn.execute(
            text(f"SELECT assessment_id FROM assessment_states AS s WHERE NOT {FINISHED_SQL}")
        ).scalars()
    )
    found.duplicated = {**_doubled_endings(conn), **_doubled_executions(conn)}
    for aid, why in _unproven_completions(conn).items():
        found.duplicated.setdefault(aid, why)
    found.broken_chains = audit_chain_problems(conn)
    found.orphaned = _ids(
        conn.execute(
            text(
                """
                SELECT s.assessment_id FROM assessment_states AS s
                LEFT JOIN assessment_leases AS l USING (assessment_id)
                WHERE s.state = 'processing'
                  AND (l.assessment_id IS NULL OR l.worker_id IS DISTINCT FROM s.worker_id
                       OR l.lease_expires_at IS NULL
                       OR l.lease_expires_at < now() - make_interval(secs => :grace))
                """
            ),
            {"grace": orphan_grace_seconds},
        ).scalars()
    )
    found.unreleased_leases = _ids(
        conn.execute(
            text(
                """
                SELECT l.assessment_id FROM assessment_leases AS l
                JOIN assessment_states AS s USING (assessment_id)
                WHERE s.state <> 'processing'
                  AND (l.worker_id IS NOT NULL OR l.lease_expires_at IS NOT NULL)
                """
            )
        ).scalars()
    )
    conn.rollback()  # end the read, so the next check sees fresh commits
    return found


def _doubled_endings(conn: Connection) -> dict[str, str]:
    """Assessments that entered completed or cancelled more than once, or in total
    more than once, or left it again (a terminal state is terminal)."""
    rows = conn.execute(
        text(
            """
            SELECT assessment_id, state, completions, cancellations FROM (
                SELECT s.assessment_id, s.state::text AS state,
                       count(*) FILTER (WHERE a.new_state = 'completed') AS completions,
                       count(*) FILTER (WHERE a.new_state = 'cancelled') AS cancellations
                FROM assessment_states AS s
                JOIN assessment_state_audit AS a USING (assessment_id)
                GROUP BY s.assessment_id, s.state
            ) AS endings
            WHERE completions + cancellations > 1
               OR (completions = 1) <> (state = 'completed')
               OR (cancellations = 1) <> (state = 'cancelled')
            """
        )
    )
    return {
        aid: f"{state}, with {completions} completion(s) and {cancellations} cancellation(s)"
        for aid, state, completions, cancellations in rows
    }


def _doubled_executions(conn: Connection) -> dict[str, str]:
    rows = conn.execute(
        text(
            "SELECT assessment_id, attempt, count(*) FROM chaos_executions "
            "GROUP BY assessment_id, attempt HAVING count(*) > 1"
        )
    )
    return {aid: f"attempt {attempt} executed {n} times" for aid, attempt, n in rows}


def _unproven_completions(conn: Connection) -> dict[str, str]:
    """Completions written by a worker (its id is ``name@host:pid``) whose result does
    not name an execution of this attempt: the result came from some other run."""
    rows = conn.execute(
        text(
            """
            SELECT s.assessment_id, s.retry_count, s.result_data ->> 'execution'
            FROM assessment_states AS s
            JOIN assessment_state_audit AS a
              ON a.assessment_id = s.assessment_id AND a.new_state = 'completed'
            WHERE s.state = 'completed' AND a.changed_by LIKE '%@%'
              AND s.assessment_type = 'chaos'
              AND NOT EXISTS (
                  SELECT 1 FROM chaos_executions AS e
                  WHERE e.assessment_id = s.assessment_id
                    AND e.id::text = s.result_data ->> 'execution'
                    AND e.attempt = s.retry_count + 1)
            """
        )
    )
    return {
        aid: f"completed by a worker with execution {execution!r}, not one of attempt {retries + 1}"
        for aid, retries, execution in rows
    }


def unfinished_count(conn: Connection, ids: list[str] | None = None) -> int:
    """How many assessments (of ``ids``, when given) are not finished yet."""
    where = "AND s.assessment_id = ANY(:ids)" if ids is not None else ""
    value = conn.execute(
        text(f"SELECT count(*) FROM assessment_states AS s WHERE NOT {FINISHED_SQL} {where}"),
        {"ids": ids},
    ).scalar_one()
    conn.rollback()
    return int(value)


def finished_count(conn: Connection) -> int:
    value = conn.execute(
        text(f"SELECT count(*) FROM assessment_states AS s WHERE {FINISHED_SQL}")
    ).scalar_one()
    conn.rollback()
    return int(value)
