"""Routing of new assessments between the store and the legacy side: a stable hash of
the id against the percentage (assessment_store/migration/routing.py)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest

from assessment_store.config import load_settings
from assessment_store.errors import InvalidInputError
from assessment_store.migration.overrides import MigrationConfig, check_value, effective
from assessment_store.migration.routing import Reason, Side, bucket, decide, routes_to_store

# Fixed for ever: a change of the hash would move assessments between sides mid-migration.
GOLDEN = {
    "a": 50,
    "assessment-1": 32,
    "00000000-0000-4000-8000-000000000000": 18,
    "ünïcode-id": 21,
}


def random_ids(count: int, seed: int = 1234) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def test_buckets_are_the_documented_hash() -> None:
    assert {key: bucket(key) for key in GOLDEN} == GOLDEN


def test_buckets_do_not_depend_on_the_process() -> None:
    # hash() is salted per process; the bucket must not be.
    script = (
        "from assessment_store.migration.routing import bucket; "
        f"print([bucket(k) for k in {list(GOLDEN)!r}])"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.strip() == str(list(GOLDEN.values()))


def test_buckets_spread_evenly() -> None:
    ids = random_ids(20_000)
    per_bucket = Counter(bucket(i) for i in ids)
    assert set(per_bucket) == set(range(100))
    assert min(per_bucket.values()) > 140 and max(per_bucket.values()) < 260  # 200 expected
    for percentage in (1, 5, 25, 50, 75, 99):
        share = sum(routes_to_store(i, percentage) for i in ids) / len(ids) * 100
        assert abs(share - percentage) < 1.5, (percentage, share)


def test_the_ends_route_everything_one_way() -> None:
    ids = random_ids(2000, seed=7)
    assert not any(routes_to_store(i, 0) for i in ids)
    assert all(routes_to_store(i, 100) for i in ids)


def test_raising_the_percentage_only_moves_work_to_the_store() -> None:
    for assessment_id in random_ids(2000, seed=9):
        sides = [routes_to_store(assessment_id, p) for p in range(101)]
        # False up to the bucket, True from it on: one switch, never back.
        assert sides == [p > bucket(assessment_id) for p in range(101)]


def test_a_disabled_store_sends_everything_to_the_legacy_side() -> None:
    route = decide("a", percentage=100, enable_store=False)
    assert (route.side, route.reason, route.bucket) == (Side.LEGACY, Reason.STORE_DISABLED, 50)
    assert decide("a", percentage=51, enable_store=True).side is Side.STORE
    assert decide("a", percentage=50, enable_store=True).side is Side.LEGACY


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("percentage", -1),
        ("percentage", 101),
        ("percentage", 50.0),
        ("percentage", True),
        ("percentage", "50"),
        ("legacy_fallback", 1),
        ("enable_store", "on"),
        ("elsewhere", True),
    ],
)
def test_bad_override_values_are_refused(setting: str, value: object) -> None:
    with pytest.raises(InvalidInputError):
        check_value(setting, value)


def test_overrides_replace_the_defaults_and_bad_rows_are_ignored() -> None:
    settings = load_settings(migration_percentage=100, migration_legacy_fallback=False)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {"setting": "percentage", "value": 25, "updated_by": "ops", "updated_at": at},
        {"setting": "enable_store", "value": "yes", "updated_by": "hand", "updated_at": at},
    ]
    config = effective(settings, rows)  # type: ignore[arg-type]
    assert (config.percentage, config.enable_store, config.legacy_fallback) == (25, True, False)
    assert set(config.overrides) == {"percentage"}
    assert config.overrides["percentage"].updated_by == "ops"
    assert MigrationConfig.defaults(settings).percentage == 100


def test_the_settings_have_the_specified_defaults() -> None:
    config = MigrationConfig.defaults(load_settings())
    assert (config.enable_store, config.legacy_fallback, config.percentage) == (True, False, 100)
    assert config.store_share == 100
