"""Config loading: built-in defaults and rules equal config/default.toml; bad files are ConfigErrors."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.errors import ConfigError
from pipeline.joblist.rules import BUILTIN_DEFAULTS, BUILTIN_RULES, job_rules

DEFAULT_TOML = Path(__file__).resolve().parent.parent / "config" / "default.toml"


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_builtins_equal_config_default_toml() -> None:
    """The compiled-in [defaults] and [rules] are exactly those documented in config/default.toml."""
    with DEFAULT_TOML.open("rb") as f:
        documented = tomllib.load(f)
    assert dict(BUILTIN_DEFAULTS) == documented["defaults"]
    assert {k: list(v) for k, v in BUILTIN_RULES.items()} == documented["rules"]


def test_loading_default_toml_changes_nothing() -> None:
    """Passing config/default.toml gives the same job rules as passing no file."""
    assert job_rules(load_config(DEFAULT_TOML)) == job_rules(load_config(None))


def test_file_values_override_builtins_key_by_key(tmp_path: Path) -> None:
    """A key set in the file replaces the built-in one; the others stay."""
    path = config_file(tmp_path, '[rules]\nOSSRegion = ["cn-beijing", "cn-hangzhou"]\n'
                                 '[defaults]\nPlatform = "centos"\n')
    rules = job_rules(load_config(path))
    assert rules.allowed["OSSRegion"] == ("cn-beijing", "cn-hangzhou")
    assert rules.allowed["OSType"] == BUILTIN_RULES["OSType"]
    assert dict(rules.defaults) == {**BUILTIN_DEFAULTS, "Platform": "centos"}


def test_empty_default_removes_a_builtin_default(tmp_path: Path) -> None:
    """Setting a default to "" means rows must fill that field themselves."""
    path = config_file(tmp_path, '[defaults]\nOSType = ""\n')
    assert "OSType" not in job_rules(load_config(path)).defaults


def test_run_passes_through_raw_and_retry_breaker_fold_into_it(tmp_path: Path) -> None:
    """[run] is kept as read, for settings to check; [retry] and [breaker] set the [run] settings
    they name (they were accepted and ignored: [retry] max_attempts = 1 still made 6 attempts)."""
    path = config_file(tmp_path, "[run]\nrate = 5\nanything = 'goes'\n[retry]\nmax_attempts = 1\n"
                                 "max_delay = 2\n[breaker]\nstreak = 3\n")
    config = load_config(path)
    assert {k: dict(v) for k, v in config.sections.items()} == {
        "run": {"rate": 5, "anything": "goes", "max_attempts": 1, "retry_max_delay": 2,
                "breaker_streak": 3}}
    assert config.source == str(path)


@pytest.mark.parametrize(("text", "message"), [
    ("[simulator]\nseed = 1\n", r"\[simulator\] is not read: the simulator takes its settings as flags"),
    ("[retry]\ntries = 1\n", r"\[retry\] has unknown key 'tries'; valid keys: max_attempts, "),
    ("[run]\nmax_attempts = 2\n[retry]\nmax_attempts = 1\n", r"are the same setting; keep one"),
])
def test_simulator_section_and_unknown_retry_keys_are_refused(tmp_path: Path, text: str,
                                                              message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(config_file(tmp_path, text))


@pytest.mark.parametrize(("text", "message"), [
    ("[defaults\n", r"settings\.toml: not valid TOML"),
    ("[defaults]\nColour = 'x'\n", r"settings\.toml: \[defaults\] has unknown key 'Colour'; valid keys: "),
    ("[defaults]\nImageName = 'x'\n", r"\[defaults\] has unknown key 'ImageName'"),
    ("[defaults]\nOSType = 3\n", r"\[defaults\] OSType must be a string"),
    ("[rules]\nColour = ['x']\n", r"\[rules\] has unknown key 'Colour'; valid keys: ComputeType, "),
    ("[rules]\nOSType = 'linux'\n", r"\[rules\] OSType must be a non-empty list of strings, e\.g\. "
     r"OSType = \['linux', 'windows'\]"),
    ("[rules]\nOSType = []\n", r"\[rules\] OSType must be a non-empty list"),
    ("[rules]\nOSType = ['windows']\n", r"\[defaults\] OSType = 'linux' is not allowed by \[rules\] "
     r"OSType = \['windows'\]; change one of them"),
    ("[logging]\nlevel = 'debug'\n", r"unknown section \[logging\]; valid sections: \[defaults\], "
     r"\[rules\], \[run\], \[retry\], \[breaker\]$"),
    ("run = 5\n", r"run must be a table"),
])
def test_bad_config_names_file_key_and_fix(tmp_path: Path, text: str, message: str) -> None:
    """Malformed TOML, unknown keys or sections and bad values raise ConfigError (exit 2), at load
    or when the job-list rules are built from the file (the command line does both first)."""
    with pytest.raises(ConfigError, match=message) as info:
        job_rules(load_config(config_file(tmp_path, text)))
    assert info.value.exit_code == 2


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p / "missing.toml", "no such config file"),
    (lambda p: p, "is a directory"),
])
def test_unusable_config_path_is_a_config_error(tmp_path: Path, make: object, message: str) -> None:
    """A missing file or a directory given as --config is a ConfigError, not a traceback."""
    assert callable(make)
    with pytest.raises(ConfigError, match=message):
        load_config(make(tmp_path))


def test_non_utf8_config_is_a_config_error(tmp_path: Path) -> None:
    """A config file that is not UTF-8 is refused with the fix."""
    path = tmp_path / "settings.toml"
    path.write_bytes(b"[run]\nname = 'caf\xe9'\n")
    with pytest.raises(ConfigError, match=r"settings\.toml"):
        load_config(path)
