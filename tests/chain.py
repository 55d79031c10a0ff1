"""Direct database checks of SPEC section 3's invariants, shared by every test tier."""

from __future__ import annotations

import itertools

from sqlalchemy import Connection, text

FINISHED = {"completed", "failed", "cancelled"}


def audit_chain_problems(conn: Connection, assessment_id: str | None = None) -> list[str]:
    """Every way the store's rows break the audit-chain invariant (empty when whole).

    For each assessment: audit rows ordered by version_to start (NULL -> pending, 1),
    each version_from is the previous version_to and each old_state the previous
    new_state, and the last row matches the row's current state and version.
    completed_at is set exactly in finished states.
    """
    where = "WHERE s.assessment_id = :id" if assessment_id else ""
    rows = conn.execute(
        text(
            f"""
            SELECT s.assessment_id, s.state::text AS state, s.version, s.completed_at,
                   a.old_state::text AS old_state, a.new_state::text AS new_state,
                   a.version_from, a.version_to, a.changed_by, a.change_reason
            FROM assessment_states AS s
            LEFT JOIN assessment_state_audit AS a USING (assessment_id)
            {where}
            ORDER BY s.assessment_id, a.version_to
            """
        ),
        {"id": assessment_id},
    ).mappings()
    problems: list[str] = []
    chains: dict[str, list[dict[str, object]]] = {}
    current: dict[str, dict[str, object]] = {}
    for row in rows:
        current[row["assessment_id"]] = dict(row)
        if row["version_to"] is not None:
            chains.setdefault(row["assessment_id"], []).append(dict(row))
    for aid, head in current.items():
        chain = chains.get(aid, [])
        if not chain:
            problems.append(f"{aid}: no audit rows")
            continue
        first = chain[0]
        if (first["old_state"], first["new_state"], first["version_from"], first["version_to"]) != (
            None,
            "pending",
            None,
            1,
        ):
            problems.append(f"{aid}: chain does not start (NULL -> pending, 1): {first}")
        for before, after in itertools.pairwise(chain):
            if after["version_from"] != before["version_to"]:
                problems.append(f"{aid}: gap {before['version_to']} -> {after['version_from']}")
            if after["old_state"] != before["new_state"]:
                problems.append(f"{aid}: state jump {before['new_state']} -> {after['old_state']}")
            if not after["changed_by"] or not after["change_reason"]:
                problems.append(f"{aid}: audit row {after['version_to']} lacks who or why")
        last = chain[-1]
        if (last["new_state"], last["version_to"]) != (head["state"], head["version"]):
            problems.append(
                f"{aid}: last audit ({last['new_state']}, {last['version_to']}) != row "
                f"({head['state']}, {head['version']})"
            )
        if (head["completed_at"] is not None) != (head["state"] in FINISHED):
            problems.append(f"{aid}: completed_at {head['completed_at']} in state {head['state']}")
    return problems


def count_in_state(conn: Connection, state: str) -> int:
    """How many assessments are in ``state`` now (ends the read's transaction, so the
    next call sees fresh commits)."""
    value = conn.execute(
        text("SELECT count(*) FROM assessment_states WHERE state = CAST(:s AS assessment_state)"),
        {"s": state},
    ).scalar_one()
    conn.rollback()
    return int(value)
