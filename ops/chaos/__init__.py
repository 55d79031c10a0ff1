"""Fault injection: private PostgreSQL and Redis instances, the faults, the invariant
checker, and the long randomized chaos run (``python -m ops.chaos.run``).

The fault suite (tests/faults) and the chaos run share everything here, so both inject
the same faults and judge the outcome with the same SQL; tests import ops.chaos, never
the other way round (but for tests/chain.py's audit-chain check, see invariants).
"""
