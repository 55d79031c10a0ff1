"""A bad setting is refused naming the variable, never repeating a secret value: the
error goes to a log or a terminal."""

from __future__ import annotations

import pytest

from assessment_store.config import load_settings
from assessment_store.errors import ConfigurationError


@pytest.mark.parametrize(
    ("variable", "secret"),
    [
        ("FLOWER_BASIC_AUTH", "ops:hunter2-secret,"),
        ("DATABASE_URL", "mysql://user:hunter2-secret@db/x"),
        ("REDIS_URL", "http://user:hunter2-secret@redis"),
    ],
)
def test_a_bad_secret_value_is_refused_without_repeating_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, secret: str
) -> None:
    monkeypatch.setenv(f"ASSESSMENT_STORE_{variable}", secret)
    with pytest.raises(ConfigurationError, match=f"ASSESSMENT_STORE_{variable}") as refused:
        load_settings()
    assert "hunter2-secret" not in str(refused.value)
