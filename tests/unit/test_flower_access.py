"""Who may reach Flower: credentials from the environment, or an explicit, local-only
opt-out; and no error repeats a secret."""

from __future__ import annotations

import pytest

from assessment_store.config import load_settings
from assessment_store.errors import ConfigurationError
from assessment_store.flower_access import FlowerAccess, credentials_on_command_line, decide


def test_the_projects_credentials_protect_flower_on_the_loopback_address_by_default() -> None:
    settings = load_settings(flower_basic_auth="ops:pw,viewer:other")
    assert decide(settings, address="") == FlowerAccess(
        basic_auth=("ops:pw", "viewer:other"), address="127.0.0.1", unauthenticated_api=False
    )
    assert decide(settings, address="0.0.0.0").address == "0.0.0.0", "behind credentials"


def test_the_projects_credentials_win_over_flowers_own_variable() -> None:
    settings = load_settings(flower_basic_auth="ops:pw")
    assert decide(settings, address="", flower_basic_auth=["x:y"]).basic_auth == ("ops:pw",)


def test_flowers_own_environment_credentials_or_oauth_are_honoured() -> None:
    settings = load_settings()
    assert decide(settings, address="", flower_basic_auth=["x:y"]).basic_auth == ("x:y",)
    assert decide(settings, address="", flower_oauth=True).basic_auth == ()


def test_without_credentials_flower_is_refused_naming_both_ways_out() -> None:
    with pytest.raises(ConfigurationError) as refused:
        decide(load_settings(), address="127.0.0.1")
    assert "ASSESSMENT_STORE_FLOWER_BASIC_AUTH" in str(refused.value)
    assert "ASSESSMENT_STORE_FLOWER_UNAUTHENTICATED" in str(refused.value)


def test_the_opt_out_is_local_only_and_never_in_production() -> None:
    opted_out = load_settings(flower_unauthenticated=True)
    assert decide(opted_out, address="") == FlowerAccess((), "127.0.0.1", True)
    assert decide(opted_out, address="::1").address == "::1"
    with pytest.raises(ConfigurationError, match="loopback"):
        decide(opted_out, address="0.0.0.0")
    production = load_settings(
        flower_unauthenticated=True, environment="production", jwt_secret="k" * 40
    )
    with pytest.raises(ConfigurationError, match="production"):
        decide(production, address="127.0.0.1")


@pytest.mark.parametrize(
    "arguments",
    [["--basic-auth=a:b"], ["--basic_auth=a:b"], ["--port=1", "-basic-auth=a:b"]],
)
def test_credentials_on_a_command_line_are_recognised(arguments: list[str]) -> None:
    assert credentials_on_command_line(arguments)


def test_credentials_on_a_command_line_are_refused_without_repeating_them() -> None:
    with pytest.raises(ConfigurationError, match="command line") as refused:
        decide(load_settings(flower_basic_auth="ops:pw"), address="", on_command_line=True)
    assert "pw" not in str(refused.value)


def test_other_arguments_are_not_credentials() -> None:
    assert not credentials_on_command_line(["--port=5555", "--address=127.0.0.1", "basic_auth"])


@pytest.mark.parametrize("password", ["CHANGE-ME", "changeme", "secret"])
def test_production_refuses_a_placeholder_password(password: str) -> None:
    settings = load_settings(
        flower_basic_auth=f"ops:{password}", environment="production", jwt_secret="k" * 40
    )
    with pytest.raises(ConfigurationError, match="placeholder") as refused:
        decide(settings, address="0.0.0.0")
    assert password not in str(refused.value)
    development = load_settings(flower_basic_auth=f"ops:{password}")
    assert decide(development, address="").basic_auth == (f"ops:{password}",)
