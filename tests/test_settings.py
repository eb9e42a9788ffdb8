"""Run settings: flag > environment > config file > default, each value checked where it came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import pytest

from pipeline.errors import ConfigError
from pipeline.settings import RunSettings, resolve_settings

FILE = "ens.toml"


def resolve(flags: Mapping[str, object] | None = None, env: Mapping[str, str] | None = None,
            section: Mapping[str, object] | None = None) -> RunSettings:
    return resolve_settings(flags=flags or {}, env=env or {}, file_section=section or {},
                            file_name=FILE)


def test_defaults() -> None:
    """With nothing given, every setting is its default."""
    assert resolve() == RunSettings()


@pytest.mark.parametrize(("flags", "env", "section", "expected"), [
    ({"rate": 5.0}, {"ENS_MIGRATE_RATE": "7"}, {"rate": 9}, 5.0),
    ({}, {"ENS_MIGRATE_RATE": "7"}, {"rate": 9}, 7.0),
    ({}, {}, {"rate": 9}, 9.0),
    ({}, {}, {}, 10.0),
    ({"rate": None}, {"ENS_MIGRATE_RATE": "7"}, {}, 7.0),  # an option not given is None
    ({}, {"ENS_MIGRATE_RATE": ""}, {"rate": 9}, 9.0),      # an empty variable counts as unset
])
def test_precedence(flags: dict[str, object], env: dict[str, str], section: dict[str, object],
                    expected: float) -> None:
    """Flag beats environment beats config file beats default."""
    assert resolve(flags, env, section).rate == expected


def test_layers_mix_per_setting() -> None:
    """Each setting takes its own highest layer."""
    settings = resolve({"concurrency": 3}, {"ENS_MIGRATE_REGION": "cn-hangzhou"},
                       {"rate": 2.5, "concurrency": 50, "transport": "httpx"})
    assert (settings.concurrency, settings.region, settings.rate, settings.transport) == \
        (3, "cn-hangzhou", 2.5, "httpx")


@pytest.mark.parametrize(("env", "attr", "expected"), [
    ({"ENS_MIGRATE_CONCURRENCY": "32"}, "concurrency", 32),
    ({"ENS_MIGRATE_MAX_ATTEMPTS": "3"}, "max_attempts", 3),
    ({"ENS_MIGRATE_RECONCILE_DELAY": "0"}, "reconcile_delay", 0.0),
    ({"ENS_MIGRATE_TIMEOUT": "2.5"}, "timeout", 2.5),
    ({"ENS_MIGRATE_BREAKER_RATIO": "1"}, "breaker_ratio", 1.0),
    ({"ENS_MIGRATE_LOG_FORMAT": "json"}, "log_format", "json"),
])
def test_environment_strings_are_typed(env: dict[str, str], attr: str, expected: object) -> None:
    """Environment values are strings, converted to each setting's type."""
    value = getattr(resolve(env=env), attr)
    assert value == expected
    assert type(value) is type(expected)


def test_int_from_file_becomes_float() -> None:
    """A whole number in the file is fine for a float setting."""
    assert resolve(section={"rate": 4}).rate == 4.0


INVALID: list[tuple[str, object]] = [
    ("rate", 0), ("rate", -1.0), ("rate", "fast"), ("rate", True), ("rate", "nan"), ("rate", "inf"),
    ("concurrency", 0), ("concurrency", 1025), ("concurrency", 4.5), ("concurrency", "four"),
    ("max_attempts", 0), ("max_attempts", 101),
    ("timeout", 0), ("timeout", "inf"), ("connect_timeout", -1), ("max_retry_time", 0),
    ("retry_max_delay", 0), ("reconcile_delay", -0.5), ("reconcile_delay", "inf"), ("lookup_rate", 0),
    ("transport", "curl"), ("breaker_warmup", 0), ("breaker_ratio", 0), ("breaker_ratio", 1.5),
    ("breaker_streak", 0), ("log_format", "xml"), ("region", ""),
]
# The environment holds only non-empty strings (an empty variable means unset).
CASES = [(layer, name, value) for layer in ("flag", "env", "file") for name, value in INVALID
         if not (layer == "env" and (value == "" or isinstance(value, bool)))]


@pytest.mark.parametrize(("layer", "name", "value"), CASES)
def test_invalid_value_names_its_source(layer: str, name: str, value: object) -> None:
    """Every invalid value is a ConfigError naming where it came from (``--rate``,
    ``environment ENS_MIGRATE_RATE``, ``<file> [run]``), the setting, the value and the rule."""
    env_name = "ENS_MIGRATE_" + name.upper()
    source = {"flag": f"--{name.replace('_', '-')}", "env": f"environment {env_name}",
              "file": f"{FILE} [run]"}[layer]
    kwargs: dict[str, Any] = {
        "flag": {"flags": {name: value}},
        "env": {"env": {env_name: str(value)}},
        "file": {"section": {name: value}},
    }[layer]
    with pytest.raises(ConfigError) as info:
        resolve(**kwargs)
    message = str(info.value)
    assert message.startswith(f"{source}: {name} = ")
    assert "use " in message


def test_unknown_file_key() -> None:
    """An unknown key in [run] is an error naming the file, the key and the valid keys."""
    with pytest.raises(ConfigError, match=rf"{FILE}: \[run\] has unknown key\(s\) rat, retries;") as info:
        resolve(section={"rat": 5, "retries": 2})
    assert "rate" in str(info.value)


def test_flag_overrides_invalid_lower_layer_only_when_checked() -> None:
    """A lower layer's value is ignored (and so not checked) when a higher layer sets it."""
    assert resolve({"rate": 3.0}, {"ENS_MIGRATE_RATE": "bogus"}).rate == 3.0


def test_every_setting_is_specified() -> None:
    """Every RunSettings field can come from the file (no field lacks a rule)."""
    for f in fields(RunSettings):
        resolve(section={f.name: getattr(RunSettings(), f.name)})


def test_settings_frozen() -> None:
    """Settings are an immutable value."""
    with pytest.raises(AttributeError):
        RunSettings().rate = 1.0  # type: ignore[misc]
