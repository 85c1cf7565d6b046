"""BANKFLOW_LIMITS gives the CLI and workers the limits a service sets in code."""

from __future__ import annotations

import pytest

from bankflow import ConfigurationError, Limits
from bankflow._limits import DEFAULT_LIMITS, limits_from_env


def test_unset_means_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BANKFLOW_LIMITS", raising=False)
    assert limits_from_env() is DEFAULT_LIMITS


def test_fields_override_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BANKFLOW_LIMITS", '{"max_steps": 50000, "max_depth": 8}')
    assert limits_from_env() == Limits(max_steps=50_000, max_depth=8)


@pytest.mark.parametrize(
    ("text", "named"),
    [('{"max_steps": 0}', "max_steps"), ('{"max_stepz": 5}', "max_stepz"), ("[1", "value")],
)
def test_a_bad_value_is_one_configuration_error(
    monkeypatch: pytest.MonkeyPatch, text: str, named: str
) -> None:
    monkeypatch.setenv("BANKFLOW_LIMITS", text)
    with pytest.raises(ConfigurationError, match=named):
        limits_from_env()
