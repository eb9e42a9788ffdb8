"""Stops during ``run``'s start-up: the first signal handlers, and what a start-up stop journals."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from pipeline.errors import EnsMigrateError, StoppedAtStartup
from pipeline.journal.reader import repair_and_warn
from pipeline.log import configure_logging
from pipeline.run.lifecycle import journal_startup_stop
from pipeline.settings import RunSettings


class EarlySignals:
    """SIGINT/SIGTERM handlers from the first line of ``run``: until the migration's own handlers
    take over, a stop raises ``StoppedAtStartup`` (exit 3, nothing sent; once the journal is
    locked its run.start and run.end are journaled on the way out, see ``journal_stop``); once
    the migration has started, a signal is only remembered, and the migration stops as soon as
    its handlers are in place."""

    def __init__(self) -> None:
        self.received: str | None = None
        self.starting = True
        self.locked = False
        """The stop came with the journal locked (``journal_stop`` was called)."""
        self.journaled: Path | None = None
        """Where the stopped run's run.start and run.end were written."""
        self.journal_error: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        self.received = signal.Signals(signum).name
        if self.starting:
            # Raised once: a second signal while the stop is being journaled is only remembered.
            self.starting = False
            raise StoppedAtStartup(self.received)

    def journal_stop(self, journal: Path, settings: RunSettings, *, retry_failed: bool, quiet: bool,
                     verbose: bool) -> Callable[[StoppedAtStartup, str | None], None]:
        """What ``journal_session`` calls, lock held, when a start-up stop passes through: repair a
        torn tail, then journal run.start (with the target once it was checked against the
        journal) and run.end (stopped by the signal, exit 3)."""
        def record(stop: StoppedAtStartup, target: str | None) -> None:
            self.locked = True
            try:
                configure_logging(fmt=settings.log_format, quiet=quiet, verbose=verbose)
                repair_and_warn(journal)
                anyio.run(lambda: journal_startup_stop(
                    journal, target=target, concurrency=settings.concurrency, rate=settings.rate,
                    retry_failed=retry_failed, detail=str(stop)))
            except (EnsMigrateError, OSError) as exc:
                self.journal_error = str(exc)
            else:
                self.journaled = journal

        return record

    def outcome(self, stop: StoppedAtStartup) -> str:
        """The line that ends a run stopped during start-up: what was journaled, if anything."""
        name = stop.signal_name
        if not self.locked:
            return (f"stopped by {name} during start-up, before the journal lock was taken: nothing "
                    "was sent or journaled; run again to resume")
        if self.journaled is None:
            return (f"stopped by {name} during start-up, before any import was sent; the stop could "
                    f"not be journaled: {self.journal_error}; run again to resume")
        return (f"stopped by {name} during start-up, before any import was sent; run.start and "
                f"run.end journaled in {self.journaled}; run again to resume")
