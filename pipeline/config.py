"""Load the TOML config file: its section names checked here, each table left to the stage that owns it."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from pipeline.errors import ConfigError

SECTIONS: tuple[str, ...] = ("defaults", "rules", "run", "retry", "breaker")
"""Top-level sections; each is checked by its owner (``[defaults]``/``[rules]``: ``joblist.rules``,
``[run]``: ``settings``). ``[retry]`` and ``[breaker]`` name ``[run]`` settings by shorter keys."""

FOLDED: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "retry": MappingProxyType({"max_attempts": "max_attempts", "max_retry_time": "max_retry_time",
                               "max_delay": "retry_max_delay"}),
    "breaker": MappingProxyType({"warmup": "breaker_warmup", "ratio": "breaker_ratio",
                                 "streak": "breaker_streak"}),
})
"""``[retry]``/``[breaker]`` key -> the ``[run]`` setting it sets (read as if written in ``[run]``)."""


@dataclass(frozen=True, slots=True)
class Config:
    """Settings read from a config file (or the built-ins when there is none)."""

    sections: Mapping[str, Mapping[str, object]] = field(default_factory=lambda: MappingProxyType({}))
    """The raw tables by section name, for their owners to validate."""
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
    """Check a parsed TOML document's sections and build the Config; pure."""
    sections: dict[str, Mapping[str, object]] = {}
    for name, table in data.items():
        if name == "simulator":
            raise ConfigError(f"{source}: [simulator] is not read: the simulator takes its settings as "
                              "flags (`ens-migrate simulator --help`); remove the section")
        if name not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{name}]; valid sections: "
                              f"{', '.join(f'[{k}]' for k in SECTIONS)}")
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {name} must be a table: write [{name}] on its own line")
        sections[name] = MappingProxyType(table)
    run = dict(sections.get("run", {}))
    for name, keys in FOLDED.items():
        for key, value in sections.pop(name, {}).items():
            if key not in keys:
                raise ConfigError(f"{source}: [{name}] has unknown key {key!r}; valid keys: "
                                  f"{', '.join(keys)}")
            if keys[key] in run:
                raise ConfigError(f"{source}: [{name}] {key} and [run] {keys[key]} are the same setting; "
                                  "keep one")
            run[keys[key]] = value
    if run:
        sections["run"] = MappingProxyType(run)
    return Config(MappingProxyType(sections), source)
