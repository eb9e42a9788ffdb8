"""The log format of one invocation: what its stderr lines (errors included) are written in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import click

from pipeline.settings import env_name

FORMATS = ("console", "json")
FLAG = "--log-format"


@dataclass(slots=True)
class Output:
    """Passed as click's ``obj`` by ``main``: a first guess from the command line and the
    environment (so a flag that does not parse is reported in the format asked for), settled by
    the command once its settings are resolved (flag > environment > ``[run]`` > default)."""

    fmt: str = "console"


def format_from_args(args: Sequence[str], env: Mapping[str, str]) -> str:
    """The format before anything is parsed (pure): the last valid ``--log-format`` on the
    command line (up to ``--``), else a valid ``ENS_MIGRATE_LOG_FORMAT``, else ``console``.

    The config file is not read here: an error found while parsing flags may be about it.
    """
    chosen: str | None = None
    rest = iter(args)
    for arg in rest:
        if arg == "--":
            break
        if arg == FLAG:
            value = next(rest, None)
        elif arg.startswith(FLAG + "="):
            value = arg.partition("=")[2]
        else:
            continue
        if value in FORMATS:
            chosen = value
    if chosen is None:
        env_value = env.get(env_name("log_format"), "").strip()
        chosen = env_value if env_value in FORMATS else "console"
    return chosen


def chosen_format() -> str:
    """The running command's format (``console`` outside ``main``, e.g. a command called alone)."""
    ctx = click.get_current_context(silent=True)
    output = ctx.find_object(Output) if ctx is not None else None
    return output.fmt if output is not None else "console"


def settle_format(fmt: str) -> None:
    """Record the format the command's settings resolved: later lines and errors use it."""
    ctx = click.get_current_context(silent=True)
    output = ctx.find_object(Output) if ctx is not None else None
    if output is not None:
        output.fmt = fmt
