"""``ens-migrate validate``: check job lists offline and say where every bad row is."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import anyio
import click

from pipeline.cli.session import load_settings
from pipeline.cli.sources import SourceOptions, materialize, source_options
from pipeline.ens.chain import resolve_source
from pipeline.ens.credentials import CredentialSource
from pipeline.errors import JobListError
from pipeline.joblist.job import Job
from pipeline.joblist.rules import job_rules
from pipeline.joblist.validate import InvalidRow, Problem, iter_rows
from pipeline.log import configure_logging, say
from pipeline.oss.source import is_oss_url


@click.command()
@click.argument("jobs", nargs=-1, required=True)
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one FILE:LINE: Field: problem line each; json: one JSON document.")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="TOML settings file whose [defaults] and [rules] apply to the rows.")
@click.option("--check-sources", is_flag=True,
              help="Also HeadObject every OSS object the valid rows name (as run does before importing).")
@click.option("--insecure-http", is_flag=True,
              help="Allow a plain http:// OSS endpoint that is not loopback.")
@source_options
def validate(jobs: tuple[str, ...], output: str, config_path: Path | None, check_sources: bool,
             insecure_http: bool, **flags: Any) -> int:
    """Check job lists (.csv, .json, .jsonl, .ndjson; - for stdin; oss://BUCKET/PREFIX) offline,
    sending nothing (--check-sources asks OSS about each object, still importing nothing).

    Prints each problem to stdout and a summary to stderr. Exit 0 when every row is valid, 1 when
    some are not, 65 when a file cannot be read as a job list.
    """
    sources = SourceOptions.pop(flags)
    config, settings = load_settings(config_path, flags)
    rules = job_rules(config)
    credentials: CredentialSource | None = None
    if check_sources or any(is_oss_url(j) for j in jobs):
        configure_logging(fmt=settings.log_format, quiet=True)
        credentials = anyio.run(resolve_source, dict(os.environ), Path.home())
        jobs = materialize(jobs, Path("runs"), region=settings.region,
                           endpoint=settings.oss_endpoint or None, options=sources,
                           insecure_http=insecure_http, credentials=credentials)
    valid: list[Job] = []
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
                if check_sources:
                    valid.append(item)
                continue
            invalid += 1
            for problem in item.problems:
                separator = _emit(out, output, separator, problem, item.name)
    except JobListError as exc:
        failure = exc
    if check_sources and valid and credentials is not None:
        from pipeline.oss.check import check_all, checker_for  # the OSS SDK, only when asked

        checker = checker_for(credentials, endpoint=settings.oss_endpoint or None,
                              insecure_http=insecure_http, rate=settings.oss_rate,
                              check_format=sources.check_format, timeout=settings.timeout)
        for job, found in anyio.run(check_all, checker, valid):
            invalid += 1
            problem = Problem(job.source, job.line, "Source", f"{found.code}: {found.message}")
            separator = _emit(out, output, separator, problem, job.name)
    if output == "json":
        error = None if failure is None else {"source": failure.path, "line": failure.line,
                                              "message": failure.reason}
        tail = {"rows": rows, "valid": rows - invalid, "invalid": invalid, "error": error}
        out.write(f"\n], {json.dumps(tail, ensure_ascii=False)[1:]}\n")
    out.flush()
    fmt = settings.log_format
    if failure is not None:
        say(fmt, "ens_migrate.validate.unreadable", f"ens-migrate: error: {failure}", level="error",
            exit_code=int(failure.exit_code))
    say(fmt, "ens_migrate.validate.summary",
        f"ens-migrate: {rows} rows checked: {rows - invalid} valid, {invalid} invalid"
        + (" (stopped at the unreadable file)" if failure else ""),
        rows=rows, valid=rows - invalid, invalid=invalid)
    return failure.exit_code if failure else 1 if invalid else 0


def _emit(out: TextIO, output: str, separator: str, problem: Problem, name: str | None) -> str:
    """Write one problem (a text line, or a JSON record after ``separator``); the next separator."""
    if output != "json":
        out.write(f"{problem}\n")
        return separator
    record = {"source": problem.source, "line": problem.line, "field": problem.field,
              "message": problem.message, "name": name}
    out.write(separator + json.dumps(record, ensure_ascii=False))
    return ",\n  "
