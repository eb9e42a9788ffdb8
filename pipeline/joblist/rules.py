"""Job-list rules from the config: the ``[defaults]`` and ``[rules]`` tables over the built-ins."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from pipeline.config import Config
from pipeline.errors import ConfigError
from pipeline.joblist.job import PARAMETERS

ENUMERATED: tuple[str, ...] = (
    "ComputeType", "OSType", "ImageFormat", "Architecture", "Platform", "LicenseType", "OSSRegion",
    "TargetOSSRegionId",
)
"""Fields whose values must come from a ``[rules]`` list in the config."""
DEFAULTABLE: tuple[str, ...] = tuple(p for p in PARAMETERS if p not in ("ImageName", "DiskDeviceMapping"))
"""Fields a ``[defaults]`` entry may fill."""


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

@dataclass(frozen=True, slots=True)
class JobRules:
    """What a valid row may hold: defaults for empty fields, and the allowed values per field."""

    defaults: Mapping[str, str] = field(default_factory=dict)
    """Field -> value used when a row leaves the field empty."""
    allowed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Enumerated field -> the values ImportImage accepts (see ``ENUMERATED``)."""



def job_rules(config: Config) -> JobRules:
    """Check the config's ``[defaults]`` and ``[rules]`` and lay them over the built-ins; pure.

    Raises ``ConfigError`` naming the file, the table and the key.
    """
    source = config.source
    rules = {**BUILTIN_RULES, **_rules(config.sections.get("rules", {}), source)}
    defaults = {**BUILTIN_DEFAULTS, **_defaults(config.sections.get("defaults", {}), source)}
    for key, value in list(defaults.items()):
        if not value:
            del defaults[key]
        elif key in rules and value not in rules[key]:
            raise ConfigError(f"{source}: [defaults] {key} = {value!r} is not allowed by [rules] {key} "
                              f"= {list(rules[key])}; change one of them")
    return JobRules(MappingProxyType(defaults), MappingProxyType(rules))


def _defaults(table: Mapping[str, object], source: str) -> dict[str, str]:
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


def _rules(table: Mapping[str, object], source: str) -> dict[str, tuple[str, ...]]:
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
