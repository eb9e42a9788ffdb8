"""``ens-migrate status``: read a journal (read-only, no lock) and print what it says."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.errors import EnsMigrateError
from pipeline.journal.reader import read_ledger
from pipeline.report.status import render_text, summarize

JSON_HELP = """\b
--json prints one JSON document (schema 1):
  schema          1
  journal         the journal path as given
  records, runs   journal lines read, runs recorded
  counts          {imported, adopted, existing, done, failed, in_doubt,
                   pending, invalid, total}: jobs by state; imported means
                   created by our request, adopted found by name after an
                   ambiguous attempt, existing already present in ENS;
                   done = imported + adopted + existing; invalid counts
                   the rows the last run journaled
  failures        [{code, count, example: {job, message, request_id,
                   source, line}}], most frequent code first
  last_run        null, or {index, started, ended, stop, detail,
                   exit_code, exit_meaning, stats}; ended, stop and
                   exit_code are null when the run recorded no end
  learned_rate    requests/s learned from throttling, or null
  image_statuses  [{status, count, mean_seconds, max_seconds}]
  duplicates      [{job, image_id, orphans}]: second images a run's own
                   check found (image_id is the journal's; delete orphans)
  changed_since_imported
                  [{job, image_id}]: imported jobs whose row changed since;
                   not sent again (run --reimport-changed replaces them)
"""


class CommandError(click.ClickException):
    """A file the command needs is missing, unreadable or unwritable (exit 2, like a usage error)."""

    exit_code = 2


def existing_journal(path: Path) -> Path:
    """Refuse a journal path that is not a file, naming it and the likely fix."""
    if not path.exists():
        raise CommandError(f"journal {path} does not exist; pass the --journal a run wrote "
                                "(by default runs/<job list name>.journal.jsonl)")
    if not path.is_file():
        raise CommandError(f"journal {path} is not a file; pass the journal file a run wrote")
    return path


@click.command("status", epilog=JSON_HELP)
@click.option("--journal", "journal_path", required=True, type=click.Path(path_type=Path),
              help="Journal file a run wrote.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (keys below).")
def status(journal_path: Path, as_json: bool) -> None:
    """Show a journal's jobs by state, failures grouped by error code, and the last run.

    Reads the journal only (no lock: safe while a run is going). Exit 0, or 2 when the journal
    is missing or unreadable.
    """
    existing_journal(journal_path)
    try:
        ledger = read_ledger(journal_path, detail=True)
    except EnsMigrateError as exc:
        raise CommandError(str(exc)) from exc
    summary = summarize(ledger, journal=str(journal_path))
    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2, ensure_ascii=False))
    else:
        click.echo(render_text(summary), nl=False)
