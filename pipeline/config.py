"""Load the TOML config: job-list defaults and rules checked here, other sections passed through raw."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from pipeline.errors import ConfigError
from pipeline.rules import DEFAULTABLE, ENUMERATED, JobRules

BUILTIN_DEFAULTS: Mapping[str, str] = MappingProxyType({
    "ComputeType": "ens_vm",
    "Architecture": "x86_64",
    "OSType": "linux",
    "ImageFormat": "qcow2",
})
"""The ``[defaults]`` of config/default.toml, compiled in."""

BUILTIN_RULES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "ComputeType": ("ens_vm",),
    "OSType": ("linux", "windows"),
    "ImageFormat": ("qcow2",),
    "Architecture": ("x86_64",),
    "Platform": ("centos", "ubuntu"),
    "LicenseType": ("Aliyun", "BYOL"),
    "OSSRegion": ("cn-beijing",),
    "TargetOSSRegionId": ("cn-beijing", "ap-southeast-1"),
})
"""The ``[rules]`` of config/default.toml, compiled in: the values ImportImage accepts today."""

OTHER_SECTIONS: tuple[str, ...] = ("run", "retry", "breaker", "simulator")
"""Top-level sections owned by other modules: passed through in ``Config.sections`` unchecked."""


@dataclass(frozen=True, slots=True)
class Config:
    """Settings read from a config file (or the built-ins when there is none)."""

    job_rules: JobRules = field(default_factory=lambda: JobRules(BUILTIN_DEFAULTS, BUILTIN_RULES))
    """Defaults and allowed values for job-list rows."""
    sections: Mapping[str, Mapping[str, object]] = field(default_factory=lambda: MappingProxyType({}))
    """The raw ``run``/``retry``/``breaker``/``simulator`` tables, for their owners to validate."""
    source: str = "built-in"
    """Where the settings came from, for messages."""


def load_config(path: Path | None) -> Config:
    """Read ``path`` over the built-in settings; None gives the built-ins. Raises ``ConfigError``."""
    if path is None:
        return Config()
    try:
        with path.open("rb") as stream:
            data = tomllib.load(stream)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file; check the --config path") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory; --config takes a TOML file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 at byte {exc.start}; save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, str(path))


def parse_config(data: Mapping[str, object], source: str) -> Config:
    """Check a parsed TOML document and build the Config; pure."""
    known = ("defaults", "rules", *OTHER_SECTIONS)
    sections: dict[str, Mapping[str, object]] = {}
    for name, table in data.items():
        if name not in known:
            raise ConfigError(f"{source}: unknown section [{name}]; valid sections: "
                              f"{', '.join(f'[{k}]' for k in known)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {name} must be a table: write [{name}] on its own line")
        if name in OTHER_SECTIONS:
            sections[name] = MappingProxyType(table)
    rules = {**BUILTIN_RULES, **_rules(data.get("rules", {}), source)}
    defaults = {**BUILTIN_DEFAULTS, **_defaults(data.get("defaults", {}), source)}
    for key, value in list(defaults.items()):
        if not value:
            del defaults[key]
        elif key in rules and value not in rules[key]:
            raise ConfigError(f"{source}: [defaults] {key} = {value!r} is not allowed by [rules] {key} "
                              f"= {list(rules[key])}; change one of them")
    job_rules = JobRules(MappingProxyType(defaults), MappingProxyType(rules))
    return Config(job_rules, MappingProxyType(sections), source)


def _defaults(table: object, source: str) -> dict[str, str]:
    assert isinstance(table, dict)
    out: dict[str, str] = {}
    for key, value in table.items():
        if key not in DEFAULTABLE:
            raise ConfigError(f"{source}: [defaults] has unknown key {key!r}; valid keys: "
                              f"{', '.join(DEFAULTABLE)}")
        if not isinstance(value, str):
            raise ConfigError(f"{source}: [defaults] {key} must be a string, e.g. {key} = \"value\" "
                              "(\"\" for no default)")
        out[key] = value
    return out


def _rules(table: object, source: str) -> dict[str, tuple[str, ...]]:
    assert isinstance(table, dict)
    out: dict[str, tuple[str, ...]] = {}
    for key, value in table.items():
        if key not in ENUMERATED:
            raise ConfigError(f"{source}: [rules] has unknown key {key!r}; valid keys: "
                              f"{', '.join(ENUMERATED)}")
        if (not isinstance(value, list) or not value
                or not all(isinstance(v, str) and v for v in value)):
            raise ConfigError(f"{source}: [rules] {key} must be a non-empty list of strings, "
                              f"e.g. {key} = [{', '.join(repr(v) for v in BUILTIN_RULES[key])}]")
        out[key] = tuple(value)
    return out
