"""The ``ens-migrate`` command line: parse, build settings once, call in, map errors to exit codes."""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Sequence

import click

from pipeline import __version__
from pipeline.cli.output import Output, format_from_args
from pipeline.errors import EnsMigrateError, ExitCode
from pipeline.log import say

COMMANDS: dict[str, str] = {
    "validate": "pipeline.cli.validate:validate",
    "discover": "pipeline.cli.discover:discover_command",
    "run": "pipeline.cli.run:run",
    "status": "pipeline.cli.status:status",
    "report": "pipeline.cli.report:report",
    "watch": "pipeline.cli.watch:watch",
    "audit": "pipeline.cli.audit:audit_command",
    "simulator": "pipeline.simulator.command:simulator",
}
"""Subcommand -> where it lives; imported only when used, so `validate` does not pay for the
HTTP stack and the simulator (about 48 MB and 0.4 s at start-up)."""


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, epilog=ExitCode.help_text(),
             context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ens-migrate")
def cli() -> None:
    """Import VM image catalogs from OSS into Alibaba Cloud ENS with ImportImage, exactly once."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (never raises for expected failures).

    Errors are written in the invocation's log format (``Output``): with JSON, one JSON line
    each, and a bug's traceback goes in a field instead of onto stderr as text.
    """
    args = list(argv) if argv is not None else sys.argv[1:]
    output = Output(format_from_args(args, os.environ))
    try:
        result = cli.main(args=args, prog_name="ens-migrate", standalone_mode=False, obj=output)
    except click.exceptions.Abort:
        say(output.fmt, "ens_migrate.cli.aborted", "ens-migrate: aborted", level="error",
            exit_code=int(ExitCode.ABORTED))
        return ExitCode.ABORTED
    except click.ClickException as exc:
        code = ExitCode.USAGE if isinstance(exc, click.UsageError) else exc.exit_code
        _show(exc, output.fmt, code)
        return code
    except EnsMigrateError as exc:
        say(output.fmt, "ens_migrate.cli.error", f"ens-migrate: error: {exc}", level="error",
            exit_code=int(exc.exit_code), error=type(exc).__name__)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except Exception as exc:
        if output.fmt != "json":
            raise
        say(output.fmt, "ens_migrate.cli.crashed",
            f"ens-migrate: internal error: {type(exc).__name__}: {exc} (a bug: please report it)",
            level="critical", exit_code=int(ExitCode.FAILED), traceback=traceback.format_exc())
        return ExitCode.FAILED
    return result if isinstance(result, int) else ExitCode.DONE


def _show(exc: click.ClickException, fmt: str, code: int) -> None:
    """click's usage block as it prints it, or one JSON line with the usage and the hint in fields."""
    if fmt != "json":
        exc.show()
        return
    fields: dict[str, object] = {}
    ctx = exc.ctx if isinstance(exc, click.UsageError) else None
    if ctx is not None:
        fields["usage"] = ctx.get_usage()
        fields["hint"] = f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help."
    say(fmt, "ens_migrate.cli.usage_error", f"ens-migrate: error: {exc.format_message()}", level="error",
        exit_code=code, **fields)


if __name__ == "__main__":
    sys.exit(main())
