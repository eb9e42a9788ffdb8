"""``ens-migrate run``: build settings once, open the journal, run the migration, exit code."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import click
import structlog

from pipeline.cli.output import chosen_format
from pipeline.cli.session import journal_session, load_settings
from pipeline.cli.sources import SourceOptions, materialize, oss_journal_stem, source_check, source_options
from pipeline.cli.startup import EarlySignals
from pipeline.cli.target import Target, name_env_vars, setting_options, target_options
from pipeline.cli.watch import say_wait, wait_exit_code, wait_line, wait_options, wait_phase
from pipeline.ens.client import EnsClient
from pipeline.ens.listing import Paging
from pipeline.ens.transport import open_exchange
from pipeline.errors import EnsError, UsageError, startup_stop
from pipeline.joblist.readers import estimate_rows
from pipeline.joblist.rules import job_rules
from pipeline.joblist.validate import InvalidRow, iter_rows
from pipeline.journal.ledger import Ledger
from pipeline.journal.reader import read_ledger
from pipeline.journal.writer import JournalWriter
from pipeline.log import configure_logging, say
from pipeline.oss.source import is_oss_url
from pipeline.report.progress import Progress
from pipeline.report.summary import summary_document, summary_line, write_summary
from pipeline.run.breaker import BreakerConfig, CircuitBreaker
from pipeline.run.limits import Lookup, RateGate
from pipeline.run.migration import Migration, RunOutcome, Window
from pipeline.run.plan import SERVER_FAILED, Action, PlanOptions, plan_rows
from pipeline.run.retry import RetryBudget, RetryPolicy
from pipeline.run.stats import RunStats, combine
from pipeline.run.window import parse_duration, seconds_until
from pipeline.run.worker import Control, WorkerContext
from pipeline.settings import RunSettings

log = structlog.get_logger("ens_migrate.run")


PROBE_CONNECTIONS = 8


def default_journal(jobs: tuple[str, ...], *, simulated: bool = False) -> Path:
    """``runs/<job-list name>[.simulated].journal.jsonl`` for the first job list (an oss:// source:
    its bucket and prefix)."""
    first = jobs[0]
    stem = ("stdin" if first == "-" else oss_journal_stem(first) if is_oss_url(first)
            else Path(first).name.rsplit(".", 1)[0])
    return Path("runs") / f"{stem}{'.simulated' if simulated else ''}.journal.jsonl"


@name_env_vars
@click.command("run")
@click.argument("jobs", nargs=-1, required=True)
@target_options
@setting_options
@source_options
@click.option("--journal", type=click.Path(path_type=Path),
              help="Journal file (default runs/<list>.journal.jsonl).")
@click.option("--rate", type=float, help="ImportImage requests per second, never exceeded in any second.")
@click.option("--concurrency", type=int, help="Requests in flight at most.")
@click.option("--max-attempts", type=int, help="Tries per job before it is recorded failed.")
@click.option("--timeout", type=float, help="Seconds to wait for an answer to one request.")
@click.option("--reconcile-horizon", type=float,
              help="Seconds after an ambiguous attempt before a lookup that finds nothing counts as "
                   "absent (default 60).")
@click.option("--retry-failed", is_flag=True, help="Also re-attempt jobs that failed in earlier runs.")
@click.option("--dry-run", is_flag=True, help="Validate, read the journal, print the plan; send nothing.")
@click.option("--simulate", is_flag=True, help="Import into the built-in simulator (no cloud account).")
@click.option("--max-duration", help="Stop submitting after this long, e.g. 90m or 4h (exit 3).")
@click.option("--deadline", help="Stop submitting at this time, HH:MM [Zone] (exit 3).")
@click.option("--cutoff", type=click.Choice(["soft", "hard"]), default="soft", show_default=True,
              help="soft: let in-flight requests finish; hard: cancel them (reconciled next run).")
@click.option("--summary", "summary_path", type=click.Path(path_type=Path),
              help="Write a JSON summary for monitoring here (atomically); - for standard output.")
@click.option("--skip-existing", is_flag=True,
              help="List the account's images once; skip jobs whose ImageName already exists.")
@click.option("--replace-failed-images", is_flag=True,
              help="With --retry-failed: delete an image that failed server-side, then import again.")
@click.option("--reimport-changed", is_flag=True,
              help="Delete the image of an imported job whose row changed, then import the new row.")
@click.option("--wait", is_flag=True, help="After importing, poll until every image is Available or failed.")
@wait_options
@click.option("--quiet", is_flag=True, help="Only warnings and the final summary.")
@click.option("-v", "--verbose", is_flag=True, help="Also debug events (each attempt).")
def run(jobs: tuple[str, ...], journal: Path | None, config_path: Path | None, dry_run: bool,
        simulate: bool, retry_failed: bool, insecure_http: bool, max_duration: str | None,
        deadline: str | None, cutoff: str, summary_path: Path | None, quiet: bool, verbose: bool,
        wait: bool,
        wait_timeout: str, poll_interval: float, skip_existing: bool, replace_failed_images: bool,
        reimport_changed: bool,
        **flags: Any) -> int:
    """Import every job of JOBS (CSV, JSON, JSON Lines) not done yet."""
    early = EarlySignals()
    early.install()
    try:
        return _run(early, jobs, journal, config_path, dry_run, simulate, retry_failed, insecure_http,
                    max_duration, deadline, cutoff, summary_path, quiet, verbose, wait, wait_timeout,
                    poll_interval, skip_existing, replace_failed_images, reimport_changed, flags)
    except BaseException as exc:
        stop = startup_stop(exc)
        if stop is None:
            raise
        say(chosen_format(), "ens_migrate.run.stopped", f"ens-migrate: {early.outcome(stop)}",
            level="warning", signal=stop.signal_name, exit_code=int(stop.exit_code),
            journal=str(early.journaled) if early.journaled else None)
        return stop.exit_code
    finally:
        early.restore()


def _run(early: EarlySignals, jobs: tuple[str, ...], journal: Path | None, config_path: Path | None,
         dry_run: bool, simulate: bool, retry_failed: bool, insecure_http: bool,
         max_duration: str | None, deadline: str | None, cutoff: str, summary_path: Path | None,
         quiet: bool, verbose: bool, wait: bool, wait_timeout: str, poll_interval: float,
         skip_existing: bool,
         replace_failed_images: bool, reimport_changed: bool, flags: dict[str, Any]) -> int:
    sources = SourceOptions.pop(flags)
    config, settings = load_settings(config_path, flags)
    rules = job_rules(config)
    journal_path = journal or default_journal(jobs, simulated=simulate)
    # Every flag is checked here, before the lock and before anything is sent.
    stop_after = _window_seconds(max_duration, deadline)
    image_timeout = parse_duration(wait_timeout, "--wait-timeout")
    if dry_run and wait:
        raise UsageError("--dry-run sends nothing, so --wait would have nothing to wait for; drop one")
    if journal_path.is_dir():
        raise UsageError(f"--journal {journal_path} is a directory; give a file, e.g. "
                         f"{journal_path / 'run.journal.jsonl'}")
    if dry_run:
        configure_logging(fmt=settings.log_format, quiet=quiet, verbose=verbose)
        jobs = materialize(jobs, journal_path.parent, region=settings.region,
                           endpoint=settings.oss_endpoint or None, options=sources,
                           insecure_http=insecure_http)
        return _dry_run(jobs, rules, journal_path,
                        PlanOptions(retry_failed=retry_failed, replace_failed_images=replace_failed_images,
                                    reimport_changed=reimport_changed))
    with journal_session(journal_path, settings, simulate=simulate, insecure_http=insecure_http,
                         quiet=quiet, verbose=verbose,
                         stopped_early=early.journal_stop(journal_path, settings, retry_failed=retry_failed,
                                                          quiet=quiet, verbose=verbose)) as session:
        target, ledger = session.target, session.ledger
        jobs = materialize(jobs, journal_path.parent, region=settings.region,
                           endpoint=target.oss_url or settings.oss_endpoint or None, options=sources,
                           insecure_http=insecure_http, credentials=target.credentials)
        # The ledger is long-lived and large; keep the cyclic GC from walking it in mid-run
        # (a full collection over a big ledger stalls every request in flight).
        gc.collect()
        gc.freeze()
        started = time.monotonic()
        options = _Options(retry_failed=retry_failed, stop_after=stop_after, hard=cutoff == "hard",
                           quiet=quiet, skip_existing=skip_existing,
                           replace_failed_images=replace_failed_images, sources=sources,
                           insecure_http=insecure_http, reimport_changed=reimport_changed)
        early.starting = False  # from here the run's own handlers stop it (run.end, exit 3)
        outcome = anyio.run(_migrate, jobs, rules, journal_path, ledger, settings,
                            target, options, lambda: early.received)
        elapsed = time.monotonic() - started
        waited = None
        if wait and outcome.stop is None:
            waited = anyio.run(lambda: wait_phase(journal_path, target, settings,
                                                  image_timeout=image_timeout,
                                                  min_interval=poll_interval))
    fmt = settings.log_format
    say(fmt, "ens_migrate.run.summary", summary_line(outcome.stats, elapsed),
        counts=outcome.stats.to_json(), elapsed_seconds=round(elapsed, 3), exit_code=outcome.exit_code)
    if outcome.detail:
        say(fmt, "ens_migrate.run.stopped", f"ens-migrate: {outcome.detail}", level="warning")
    code = outcome.exit_code
    if waited is not None:
        say_wait(fmt, wait_line(waited), waited, journal_path)
        code = combine(code, wait_exit_code(waited))
    if summary_path:
        document = summary_document(outcome.stats, stop=outcome.stop, detail=outcome.detail, code=code,
                                    elapsed=elapsed, rate=settings.rate, journal=str(journal_path))
        if waited is not None:
            document["images"] = {"available": waited.available, "failed": waited.failed,
                                  "still_importing": waited.timed_out + waited.left,
                                  "stopped": "credentials" if waited.expired else None}
        write_summary(summary_path, document)
    return code


def _window_seconds(max_duration: str | None, deadline: str | None) -> float | None:
    limits = []
    if max_duration:
        limits.append(parse_duration(max_duration, "--max-duration"))
    if deadline:
        limits.append(seconds_until(deadline, datetime.now().astimezone()))
    return min(limits) if limits else None


@dataclass(frozen=True, slots=True)
class _Options:
    retry_failed: bool
    stop_after: float | None
    hard: bool
    quiet: bool
    skip_existing: bool
    replace_failed_images: bool
    sources: SourceOptions | None = None
    insecure_http: bool = False
    reimport_changed: bool = False


async def _migrate(jobs: tuple[str, ...], rules: Any, journal_path: Path, ledger: Ledger,
                   settings: RunSettings, target: Target, options: _Options,
                   early_signal: Callable[[], str | None]) -> RunOutcome:
    endpoint, credentials = target.endpoint, target.credentials
    stop_after, quiet = options.stop_after, options.quiet
    start_rate = min(settings.rate, ledger.learned_rate * 1.05) if ledger.learned_rate else None
    control = Control()
    # The journal opens first: a path that cannot be written fails before anything is sent.
    async with JournalWriter(journal_path).running() as writer, \
            open_exchange(endpoint, concurrency=settings.concurrency,
                             connect_timeout=settings.connect_timeout, read_timeout=settings.timeout,
                             transport=settings.transport) as http, \
            source_check(options.sources or SourceOptions.pop({}), settings, credentials,
                         ens_host=endpoint.host, oss_url=target.oss_url,
                         insecure_http=options.insecure_http) as check_source:
        lookup = Lookup.per_second(settings.lookup_rate)
        ctx = WorkerContext(
            api=EnsClient(http, endpoint, credentials, paging=Paging(pacer=lookup)), journal=writer,
            gate=RateGate(settings.rate, start=start_rate), lookup=lookup,
            policy=RetryPolicy(max_attempts=settings.max_attempts, max_delay=settings.retry_max_delay,
                               max_elapsed=settings.max_retry_time),
            budget=RetryBudget(), stats=RunStats(), control=control, clock=time.monotonic,
            sleep=control.wait, reconcile_delay=settings.reconcile_delay,
            horizon=settings.reconcile_horizon,
            breaker=CircuitBreaker(BreakerConfig(settings.breaker_warmup, settings.breaker_ratio,
                                                 settings.breaker_streak)),
            check_source=check_source)
        # JSON on a terminal too: no bar, the periodic progress event (every stderr line is JSON).
        display = Progress(lambda: ctx.gate.rate, total=estimate_rows(jobs),
                           tty=False if quiet or settings.log_format == "json" else None)
        window = Window(stop_at=time.monotonic() + stop_after if stop_after else None, hard=options.hard)
        client = ctx.api
        assert isinstance(client, EnsClient)
        existing = await _list_existing(client) if options.skip_existing else None
        migration = Migration(ctx, ledger, concurrency=settings.concurrency,
                              retry_failed=options.retry_failed,
                              replace_failed_images=options.replace_failed_images, existing=existing,
                              reimport_changed=options.reimport_changed,
                              window=window, progress=None if quiet else display.update,
                              progress_interval=display.interval, early_signal=early_signal,
                              target=target.name)
        with display:
            return await migration.run(iter_rows(jobs, rules),
                                       probe=lambda: _probe(client, settings.concurrency, lookup))


async def _probe(client: EnsClient, concurrency: int, lookup: Lookup) -> None:
    """A few DescribeSelfImages calls side by side, before any import: they check the key, and they
    open pooled connections (DNS, TCP and TLS set-up done), so the first imports do not arrive late
    and bunch with those sent a second later."""
    errors: list[EnsError] = []

    async def one() -> None:
        try:
            await lookup.acquire()
            await client.describe_self_images(page_size=1)
        except EnsError as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(max(1, min(PROBE_CONNECTIONS, concurrency, int(lookup.rate)))):
            tg.start_soon(one)
    if errors:
        raise errors[0]


async def _list_existing(client: EnsClient) -> dict[str, str]:
    """ImageName -> ImageId of every image the account has that did not fail server-side (every
    page paced by the lookup rate, a throttled page retried from where it stopped)."""
    existing: dict[str, str] = {}
    async for image in client.iter_all_images():
        if image.status not in SERVER_FAILED:
            existing.setdefault(image.image_name, image.image_id)
    log.info("ens_migrate.run.existing_listed",
             message="listed the account's images for --skip-existing", images=len(existing))
    return existing


def _dry_run(jobs: tuple[str, ...], rules: Any, journal_path: Path, options: PlanOptions) -> int:
    ledger = read_ledger(journal_path)
    rows = invalid = 0
    counts = dict.fromkeys(Action, 0)
    for item in plan_rows(iter_rows(jobs, rules), ledger, options):
        rows += 1
        if isinstance(item, InvalidRow):
            invalid += 1
            for problem in item.problems:
                click.echo(str(problem))
            continue
        counts[item.action] += 1
        if item.action is Action.SKIP_CHANGED and item.entry is not None:
            click.echo(f"{item.job.location}: {item.job.name}: changed since imported as "
                       f"{item.entry.image_id}; not sent (--reimport-changed to replace it)")
    click.echo(f"plan for {', '.join(jobs)} (journal {journal_path}): {rows} rows; "
               f"{dry_run_actions(counts)}, invalid {invalid}. Nothing was sent (--dry-run).")
    return 0


_ACTION_WORDS = {
    Action.SEND: "import {}",
    Action.REPLACE: "delete the failed image and import again {}",
    Action.RECONCILE: "reconcile first {}",
    Action.SKIP_DONE: "skip done {}",
    Action.SKIP_FAILED: "skip failed {} (--retry-failed to include)",
    Action.SKIP_FAILED_IMAGE: "skip failed image {} (--replace-failed-images to include)",
    Action.SKIP_EXISTING: "skip existing {}",
    Action.SKIP_CHANGED: "changed since imported {} (not sent; --reimport-changed to replace)",
    Action.REIMPORT: "delete the imported image and import the changed row {}",
}


def dry_run_actions(counts: dict[Action, int]) -> str:
    """Every action of the plan with its count, in one fixed order (none left out)."""
    return ", ".join(_ACTION_WORDS[action].format(counts.get(action, 0)) for action in Action)
