"""``ens-migrate report``: write the completion report, or the failed jobs as a job list."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.output import chosen_format
from pipeline.cli.status import CommandError, existing_journal
from pipeline.errors import EnsMigrateError
from pipeline.journal.reader import read_ledger
from pipeline.log import say
from pipeline.report.completion import REPORT_COLUMNS, failed_rows, left_out, report_rows, to_csv
from pipeline.report.summary import write_private_atomic

COLUMNS_HELP = "\b\nReport columns:\n  " + ",\n  ".join(
    ", ".join(REPORT_COLUMNS[i:i + 5]) for i in range(0, len(REPORT_COLUMNS), 5)) + "\n"


@click.command("report", epilog=COLUMNS_HELP)
@click.option("--journal", "journal_path", required=True, type=click.Path(path_type=Path),
              help="Journal file a run wrote.")
@click.option("--out", "out_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="CSV file to write (replaced atomically, readable by you only); - for standard output.")
@click.option("--failed-only", is_flag=True,
              help="Write only the failed jobs, with only the job columns: a job list for `run`.")
def report(journal_path: Path, out_path: Path, failed_only: bool) -> None:
    """Write a CSV report of every job in a journal: its parameters, state, error and RequestIds.

    The job's ImportImage parameters come first (as kept in the journal), then the outcome
    columns below; RequestIds lists every attempt's, separated by ';'. With --failed-only the
    file holds the failed jobs' parameters only, so it is a valid job list: fix the cause, then
    `ens-migrate run FILE`. Invalid rows have no parameters to write: fix them in the source list.
    Exit 0, or 2 when the journal is missing or unreadable or the file cannot be written.
    """
    existing_journal(journal_path)
    try:
        ledger = read_ledger(journal_path, keep_params=True, detail=True)
    except EnsMigrateError as exc:
        raise CommandError(str(exc)) from exc
    text, rows = to_csv(failed_rows(ledger) if failed_only else report_rows(ledger))
    try:
        write_private_atomic(out_path, text)
    except (EnsMigrateError, OSError) as exc:
        raise CommandError(f"cannot write {out_path}: {getattr(exc, 'strerror', None) or exc}") from exc
    kind = "failed job" if failed_only else "job"
    where = "standard output" if str(out_path) == "-" else str(out_path)
    fmt = chosen_format()
    say(fmt, "ens_migrate.report.written", f"ens-migrate: wrote {rows} {kind}{'' if rows == 1 else 's'} "
        f"to {where}", rows=rows, out=where)
    if failed_only:
        missing = left_out(ledger)
        if missing.invalid:
            say(fmt, "ens_migrate.report.left_out",
                f"ens-migrate: {missing.invalid} invalid row{'s' if missing.invalid != 1 else ''} "
                "of the last run left out (never sent, no parameters): fix them in the source "
                "job list; `ens-migrate validate` or `ens-migrate report` lists them",
                level="warning", invalid=missing.invalid)
        if missing.failed_without_params:
            say(fmt, "ens_migrate.report.left_out",
                f"ens-migrate: {missing.failed_without_params} failed job(s) left out: the journal "
                "holds no parameters for them; take them from the source job list "
                "(`ens-migrate report` names them)", level="warning", failed=missing.failed_without_params)
