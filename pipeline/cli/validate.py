"""``ens-migrate validate``: check job lists offline and say where every bad row is."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from pipeline.config import load_config
from pipeline.errors import JobListError
from pipeline.joblist.rules import job_rules
from pipeline.joblist.validate import InvalidRow, iter_rows


@click.command()
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
    rules = job_rules(load_config(config_path))
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
