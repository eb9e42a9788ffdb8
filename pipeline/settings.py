"""Run settings: one frozen value built once from flag > environment > config file > default."""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

from pipeline.errors import ConfigError

ENV_PREFIX = "ENS_MIGRATE_"
OTHER_ENV: frozenset[str] = frozenset({"ENS_MIGRATE_ECS_METADATA_ENDPOINT"})
"""``ENS_MIGRATE_*`` variables that are not run settings (read where they apply)."""
Transport = Literal["aiohttp", "httpx"]
"""The HTTP stack under the ENS client (``pipeline.ens.transport``)."""


def _positive(kind: type) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        right_kind = isinstance(value, kind)
        # float("inf") parses, but an infinite rate or timeout breaks the limiter and the clock.
        return right_kind and math.isfinite(value) and bool(value > 0)

    return check


@dataclass(frozen=True, slots=True)
class _Spec:
    kind: type
    check: Callable[[Any], bool]
    rule: str


_SPECS: dict[str, _Spec] = {
    "region": _Spec(str, bool, "a region ID such as cn-beijing"),
    "endpoint": _Spec(str, lambda v: True, "a URL such as https://ens.aliyuncs.com"),
    "rate": _Spec(float, _positive(float), "a number of requests per second above 0"),
    "concurrency": _Spec(int, lambda v: isinstance(v, int) and 1 <= v <= 1024, "a whole number 1-1024"),
    "max_attempts": _Spec(int, lambda v: isinstance(v, int) and 1 <= v <= 100, "a whole number 1-100"),
    "timeout": _Spec(float, _positive(float), "seconds above 0"),
    "connect_timeout": _Spec(float, _positive(float), "seconds above 0"),
    "max_retry_time": _Spec(float, _positive(float), "seconds above 0"),
    "retry_max_delay": _Spec(float, _positive(float), "seconds above 0"),
    "reconcile_delay": _Spec(float, lambda v: isinstance(v, float) and 0 <= v < math.inf,
                             "seconds, 0 or more"),
    "reconcile_horizon": _Spec(float, lambda v: isinstance(v, float) and 0 <= v < math.inf,
                               "seconds, 0 or more"),
    "lookup_rate": _Spec(float, _positive(float), "lookups per second above 0"),
    "transport": _Spec(str, lambda v: v in get_args(Transport), " or ".join(get_args(Transport))),
    "breaker_warmup": _Spec(int, lambda v: isinstance(v, int) and v >= 1, "a whole number >= 1"),
    "breaker_ratio": _Spec(float, lambda v: isinstance(v, float) and 0 < v <= 1, "a fraction in (0, 1]"),
    "breaker_streak": _Spec(int, lambda v: isinstance(v, int) and v >= 1, "a whole number >= 1"),
    "log_format": _Spec(str, lambda v: v in ("console", "json"), "console or json"),
    "oss_rate": _Spec(float, _positive(float), "OSS source-check requests per second above 0"),
    "oss_endpoint": _Spec(str, lambda v: True, "a URL such as https://oss-cn-beijing-internal.aliyuncs.com"),
}


@dataclass(frozen=True, slots=True)
class RunSettings:
    """Tunables of ``run`` that may come from a flag, ``ENS_MIGRATE_<NAME>``, or ``[run]``."""

    region: str = "cn-beijing"
    endpoint: str = ""
    rate: float = 10.0
    concurrency: int = 16
    max_attempts: int = 6
    timeout: float = 30.0
    connect_timeout: float = 5.0
    max_retry_time: float = 600.0
    retry_max_delay: float = 20.0
    reconcile_delay: float = 1.0
    reconcile_horizon: float = 60.0
    lookup_rate: float = 10.0
    transport: Transport = "aiohttp"
    breaker_warmup: int = 20
    breaker_ratio: float = 0.5
    breaker_streak: int = 5
    log_format: str = "console"
    oss_rate: float = 20.0
    """HeadObject/GetObject calls of the source checks per second at most."""
    oss_endpoint: str = ""
    """OSS endpoint of the source checks; '' for https://oss-<OSSRegion>.aliyuncs.com."""


def _coerce(name: str, raw: object, origin: str) -> Any:
    spec = _SPECS[name]
    value: Any = raw
    try:
        if spec.kind is float and isinstance(raw, int | str) and not isinstance(raw, bool):
            value = float(raw)
        elif spec.kind is int and isinstance(raw, str):
            value = int(raw)
    except ValueError:
        value = raw
    if isinstance(value, bool) or not isinstance(value, spec.kind) or not spec.check(value):
        raise ConfigError(f"{origin}: {name} = {raw!r} is not valid: use {spec.rule}")
    return value


ENV_REGION_ID = "ALIBABA_CLOUD_REGION_ID"
"""The region default when no flag, ENS_MIGRATE_REGION or config file names one."""


def resolve_settings(*, flags: Mapping[str, object], env: Mapping[str, str],
                     file_section: Mapping[str, object], file_name: str) -> RunSettings:
    """Merge the four layers; each value is checked where it came from, so errors name the source."""
    unknown = sorted(set(file_section) - set(_SPECS))
    if unknown:
        raise ConfigError(f"{file_name}: [run] has unknown key(s) {', '.join(unknown)}; "
                          f"valid keys: {', '.join(sorted(_SPECS))}")
    values: dict[str, Any] = {}
    for f in fields(RunSettings):
        name = f.name
        env_name = ENV_PREFIX + name.upper()
        if flags.get(name) is not None:
            values[name] = _coerce(name, flags[name], f"--{name.replace('_', '-')}")
        elif env.get(env_name):
            values[name] = _coerce(name, env[env_name], f"environment {env_name}")
        elif name in file_section:
            values[name] = _coerce(name, file_section[name], f"{file_name} [run]")
        elif name == "region" and env.get(ENV_REGION_ID, "").strip():
            # The SDK's and the aliyun CLI's region variable, below our own layers.
            values[name] = _coerce(name, env[ENV_REGION_ID].strip(), f"environment {ENV_REGION_ID}")
    return RunSettings(**values)


def env_name(setting: str) -> str:
    """The environment variable of a setting: ``rate`` -> ``ENS_MIGRATE_RATE``."""
    return ENV_PREFIX + setting.upper()


def unknown_env(env: Mapping[str, str]) -> list[str]:
    """A warning for each ``ENS_MIGRATE_*`` variable that sets nothing (a typo is otherwise
    silently ignored), naming the closest setting's variable."""
    known = {env_name(f.name) for f in fields(RunSettings)} | OTHER_ENV
    warnings = []
    for name in sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in known):
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else f"; settings: {', '.join(sorted(known))}"
        warnings.append(f"environment variable {name} is not an ens-migrate setting and is ignored{hint}")
    return warnings
