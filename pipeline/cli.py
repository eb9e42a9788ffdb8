"""The ``ens-migrate`` command line: parse, build settings once, call in, map errors to exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from pipeline import __version__
from pipeline.cli_report import report
from pipeline.cli_run import run
from pipeline.cli_status import status
from pipeline.cli_watch import watch
from pipeline.config import load_config
from pipeline.errors import EnsMigrateError, JobListError
from pipeline.rules import InvalidRow, iter_rows
from pipeline.simulator.command import simulator

EXIT_CODES_HELP = """\b
Exit codes:
  0   every job in the list is done (imported now or in an earlier run)
  1   the run finished, but some jobs failed (the report says which and why)
  2   usage or configuration error: bad flag, unreadable config, no credentials
  3   stopped early and resumable: deadline reached, or drained after SIGINT/SIGTERM
  4   aborted by the failure circuit breaker
  65  the job list file itself is unreadable (encoding, header, JSON syntax)
  75  another run holds the journal lock
  130 hard abort (second signal)
"""


@click.group(epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ens-migrate")
def cli() -> None:
    """Import VM image catalogs from OSS into Alibaba Cloud ENS with ImportImage, exactly once."""


@cli.command()
@click.argument("jobs", nargs=-1, required=True)
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one FILE:LINE: Field: problem line each; json: one JSON document.")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="TOML settings file whose [defaults] and [rules] apply to the rows.")
def validate(jobs: tuple[str, ...], output: str, config_path: Path | None) -> int:
    """Check job lists (.csv, .json, .jsonl, .ndjson; - for stdin) offline, sending nothing.

    Prints each problem to stdout and a summary to stderr. Exit 0 when every row is valid, 1 when
    some are not, 65 when a file cannot be read as a job list.
    """
    rules = load_config(config_path).job_rules
    out = sys.stdout
    rows = invalid = 0
    failure: JobListError | None = None
    separator = "\n  "
    if output == "json":
        out.write('{"problems": [')
    try:
        for item in iter_rows(jobs, rules):
            rows += 1
            if not isinstance(item, InvalidRow):
                continue
            invalid += 1
            for problem in item.problems:
                if output == "json":
                    record = {"source": problem.source, "line": problem.line, "field": problem.field,
                              "message": problem.message, "name": item.name}
                    out.write(separator + json.dumps(record, ensure_ascii=False))
                    separator = ",\n  "
                else:
                    out.write(f"{problem}\n")
    except JobListError as exc:
        failure = exc
    if output == "json":
        error = None if failure is None else {"source": failure.path, "line": failure.line,
                                              "message": failure.reason}
        tail = {"rows": rows, "valid": rows - invalid, "invalid": invalid, "error": error}
        out.write(f"\n], {json.dumps(tail, ensure_ascii=False)[1:]}\n")
    out.flush()
    if failure is not None:
        click.echo(f"ens-migrate: error: {failure}", err=True)
    click.echo(f"ens-migrate: {rows} rows checked: {rows - invalid} valid, {invalid} invalid"
               + (" (stopped at the unreadable file)" if failure else ""), err=True)
    return failure.exit_code if failure else 1 if invalid else 0


cli.add_command(run)
cli.add_command(status)
cli.add_command(report)
cli.add_command(simulator)
cli.add_command(watch)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code (never raises for expected failures)."""
    try:
        result = cli.main(args=list(argv) if argv is not None else None, prog_name="ens-migrate",
                          standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("ens-migrate: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return 2 if isinstance(exc, click.UsageError) else exc.exit_code
    except EnsMigrateError as exc:
        click.echo(f"ens-migrate: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
