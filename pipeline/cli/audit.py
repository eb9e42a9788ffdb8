"""``ens-migrate audit``: list the account's images once (paced) and hold them against a journal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import click

from pipeline.cli.session import journal_session, load_settings
from pipeline.cli.target import Target, target_options
from pipeline.ens.client import EnsClient, Image
from pipeline.ens.listing import Paging
from pipeline.ens.transport import open_exchange
from pipeline.errors import ExitCode
from pipeline.journal.ledger import Ledger
from pipeline.journal.writer import JournalWriter
from pipeline.report.audit import AuditReport, audit, without
from pipeline.run.delete import Deleter, DeleteResult, delete_all
from pipeline.run.limits import Lookup
from pipeline.settings import RunSettings

EPILOG = """\b
Exit codes: 0 every job checks out; 1 something is wrong (missing, duplicates,
failed server-side, images unknown to the journal) or a deletion failed;
2 usage error (bad flag, no such journal).
"""

_Deletions = list[tuple[str, str, DeleteResult | None]]
"""(job, ImageId, outcome); the outcome is None for what --dry-run would delete."""


@click.command("audit", epilog=EPILOG)
@click.option("--journal", type=click.Path(path_type=Path), required=True, help="The runs' journal.")
@target_options
@click.option("--simulate", is_flag=True,
              help="Audit the built-in simulator's images (its state file beside the journal).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of lines.")
@click.option("--delete-duplicates", is_flag=True,
              help="Delete the orphans of a name whose journaled image exists (not while Creating).")
@click.option("--dry-run", is_flag=True, help="With --delete-duplicates: show what would be deleted.")
@click.option("--quiet", is_flag=True, help="Only warnings and the result.")
def audit_command(journal: Path, config_path: Path | None, insecure_http: bool, simulate: bool,
                  as_json: bool, delete_duplicates: bool, dry_run: bool, quiet: bool,
                  **flags: Any) -> int:
    """Hold the account's images against JOURNAL: per job ok, missing, duplicates (which image
    the journal holds, which are orphans), failed server-side, or images unknown to the journal."""
    if dry_run and not delete_duplicates:
        raise click.UsageError("--dry-run goes with --delete-duplicates")
    if not journal.exists():
        raise click.UsageError(f"journal {journal} does not exist: pass the --journal of your runs")
    _, settings = load_settings(config_path, flags)
    # Only deleting writes the journal; a plain audit reads it without the lock, beside a run.
    with journal_session(journal, settings, simulate=simulate, insecure_http=insecure_http,
                         quiet=quiet or as_json, detail=True,
                         lock=delete_duplicates and not dry_run) as session:
        target = session.target
        report, deletions = anyio.run(_audit, journal, session.ledger, target, settings,
                                      delete_duplicates, dry_run)
    failed_deletes = [d for d in deletions if d[2] is not None and not d[2].outcome.done]
    code = ExitCode.DONE if report.clean and not failed_deletes else ExitCode.FAILED
    if as_json:
        click.echo(json.dumps(_document(journal, target.name, report, deletions, code),
                              ensure_ascii=False, indent=2))
    else:
        _print(journal, report, deletions)
    return code


async def _audit(journal: Path, ledger: Ledger, target: Target, settings: RunSettings,
                 delete_duplicates: bool, dry_run: bool) -> tuple[AuditReport, _Deletions]:
    lookup = Lookup.per_second(settings.lookup_rate)
    async with open_exchange(target.endpoint, concurrency=2, connect_timeout=settings.connect_timeout,
                             read_timeout=settings.timeout, transport=settings.transport) as wire:
        client = EnsClient(wire, target.endpoint, target.credentials, paging=Paging(pacer=lookup))
        images: list[Image] = [image async for image in client.iter_all_images()]
        report = audit(ledger, images)
        targets = [(key, orphan.image_id) for key, orphan in report.deletable()]
        if not delete_duplicates or not targets:
            return report, []
        if dry_run:
            return report, [(key, image_id, None) for key, image_id in targets]
        async with JournalWriter(journal).running() as writer:
            deleter = Deleter(client, writer, pace=lookup.acquire)
            done = await delete_all(deleter, targets, reason="audit-duplicate")
    gone = {image_id: True for _, image_id, result in done if result.outcome.done}
    return audit(ledger, without(images, gone)), list(done)


def _print(journal: Path, report: AuditReport, deletions: _Deletions) -> None:
    click.echo(f"audit of {journal}: {report.summary_line()}")
    for job in report.problems:
        click.echo(f"  {job.line()}")
    for key, image_id, result in deletions:
        if result is None:
            click.echo(f"  would delete {image_id} (orphan of {key})")
        elif result.outcome.done:
            click.echo(f"  deleted {image_id} (orphan of {key})")
        else:
            click.echo(f"  not deleted {image_id} (orphan of {key}): {result.outcome.value} "
                       f"{result.code or ''} {result.message or ''}".rstrip())
    for key, orphan in report.waiting():
        click.echo(f"  {orphan.image_id} (orphan of {key}) is still Creating: not deleted; "
                   "run the audit again once it is not")


def _document(journal: Path, target: str, report: AuditReport, deletions: _Deletions,
              code: int) -> dict[str, Any]:
    return {
        "schema": 1, "journal": str(journal), "target": target, "images_listed": report.images_listed,
        "counts": report.counts, "clean": report.clean,
        "problems": [job.to_json() for job in report.problems],
        "deletions": [{"job": key, "image_id": image_id,
                       "outcome": "would_delete" if result is None else result.outcome.value,
                       "code": result.code if result else None} for key, image_id, result in deletions],
        "exit_code": code,
    }
