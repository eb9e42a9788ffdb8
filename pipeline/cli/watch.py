"""``ens-migrate watch`` and ``run --wait``: wait until imported images are Available or failed."""

from __future__ import annotations

import shlex
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import click
import structlog

from pipeline.cli.session import journal_session, load_settings
from pipeline.cli.target import F, Target, name_env_vars, target_options
from pipeline.ens.client import EnsClient
from pipeline.ens.listing import Paging
from pipeline.ens.transport import open_exchange
from pipeline.errors import ExitCode, UsageError
from pipeline.journal.reader import read_ledger
from pipeline.journal.writer import JournalWriter
from pipeline.log import say
from pipeline.run.limits import Lookup
from pipeline.run.wait import Waiter, WaitResult, pending_images
from pipeline.run.window import parse_duration
from pipeline.settings import RunSettings

log = structlog.get_logger("ens_migrate.wait")


async def wait_phase(journal_path: Path, target: Target, settings: RunSettings, *,
                     image_timeout: float, min_interval: float) -> WaitResult:
    """Poll every imported image of the journal that has no final status yet (lock held)."""
    pending = pending_images(read_ledger(journal_path, detail=True))
    if not pending:
        return WaitResult()
    log.info("ens_migrate.wait.start", message="waiting for images to become Available", images=len(pending))
    stop = anyio.Event()
    lookup = Lookup.per_second(settings.lookup_rate)
    async with JournalWriter(journal_path).running() as writer, \
            open_exchange(target.endpoint, concurrency=2, connect_timeout=settings.connect_timeout,
                             read_timeout=settings.timeout,
                             transport=settings.transport) as http:
        async def pause(seconds: float) -> None:
            with anyio.move_on_after(seconds):
                await stop.wait()

        client = EnsClient(http, target.endpoint, target.credentials, paging=Paging(pacer=lookup))
        waiter = Waiter(client, writer, sleep=pause, stopping=stop.is_set,
                        timeout=image_timeout, min_interval=min_interval,
                        max_interval=max(min_interval, 30.0))
        signals = anyio.CancelScope()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_stop_on_signal, stop, signals)
            try:
                result = await waiter.wait(pending)
            finally:
                signals.cancel()
    return result


async def _stop_on_signal(stop: anyio.Event, scope: anyio.CancelScope) -> None:
    with scope, anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            log.warning("ens_migrate.wait.stopping",
                        message="stopping the wait; run `ens-migrate watch` later to go on")
            stop.set()


def wait_exit_code(result: WaitResult) -> ExitCode:
    """0 all Available, 1 some failed server-side, 3 some still importing (resumable) or the
    credentials expired (as a run they stop: resumable, whatever failed before)."""
    if result.expired is not None:
        return ExitCode.STOPPED
    if result.failed:
        return ExitCode.FAILED
    if result.timed_out or result.left:
        return ExitCode.STOPPED
    return ExitCode.DONE


def wait_line(result: WaitResult) -> str:
    """One line for people."""
    return (f"images: {result.available} Available, {result.failed} failed, {result.timed_out} still "
            f"importing after the timeout, {result.left} not checked (stopped); {result.polls} polls")


def say_wait(fmt: str, line: str, result: WaitResult, journal: Path) -> None:
    """The wait's line, each image that failed server-side, and when the credentials ran out the
    one line naming their source and the fix."""
    say(fmt, "ens_migrate.wait.summary", line)
    for failure in result.failures:
        say(fmt, "ens_migrate.wait.image_failed", f"  {failure}", level="warning")
    if result.expired is not None:
        again = result.expired.then_run(f"ens-migrate watch --journal {shlex.quote(str(journal))}")
        say(fmt, "ens_migrate.wait.credentials_expired",
            f"ens-migrate: the wait stopped: {again} (the images not checked are not failed)",
            level="error", code=result.expired.code)


def wait_options(command: F) -> F:
    """``--wait-timeout`` and ``--poll-interval`` (watch, and run with --wait)."""
    command = click.option("--poll-interval", type=click.FloatRange(min=0, min_open=True), default=3.0,
                           show_default=True,
                           help="First interval between status polls, seconds (grows to 30).")(command)
    return click.option("--wait-timeout", default="120m", show_default=True,
                        help="Give up on an image still importing after this long (exit 3).")(command)


@name_env_vars
@click.command("watch")
@click.option("--journal", type=click.Path(path_type=Path), required=True, help="The run's journal.")
@target_options
@wait_options
@click.option("--simulate", is_flag=True,
              help="Poll the built-in simulator a `run --simulate` imported into (its images are kept "
                   "beside the journal).")
@click.option("--quiet", is_flag=True, help="Only warnings and the final line.")
@click.option("-v", "--verbose", is_flag=True, help="Also debug events.")
def watch(journal: Path, config_path: Path | None, insecure_http: bool, wait_timeout: str,
          poll_interval: float, simulate: bool, quiet: bool, verbose: bool, **flags: Any) -> int:
    """Poll the images a run imported until each is Available or failed (exit 0, 1, or 3)."""
    _, settings = load_settings(config_path, flags)
    if not journal.exists():
        raise UsageError(f"--journal {journal}: no such file; give the journal of the run to watch")
    if journal.is_dir():
        raise UsageError(f"--journal {journal} is a directory; give the run's journal file")
    timeout = parse_duration(wait_timeout, "--wait-timeout")
    with journal_session(journal, settings, simulate=simulate, insecure_http=insecure_http,
                         quiet=quiet, verbose=verbose) as session:
        started = time.monotonic()
        result = anyio.run(lambda: wait_phase(journal, session.target, settings, image_timeout=timeout,
                                              min_interval=poll_interval))
    say_wait(settings.log_format, f"{wait_line(result)} in {time.monotonic() - started:.1f}s", result,
             journal)
    return wait_exit_code(result)
