"""Progress for people: a live line on a terminal, a structured log line every few seconds elsewhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType

import structlog
from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from pipeline.run.stats import RunStats

log = structlog.get_logger("ens_migrate.progress")


def figures(stats: RunStats, elapsed: float, limit: float, total: int | None) -> dict[str, object]:
    """What progress shows (pure): counts, done of total, the request rate and an ETA.

    Rows settled without a request (done earlier, failed earlier, existing, invalid) count as
    done but not toward the sending speed; the ETA divides what is left to send (what the
    workers hold, plus the unread rows at the share of rows so far that needed sending) by the
    speed at which sent jobs finish.
    """
    sent = stats.imported + stats.adopted + stats.failed
    settled = stats.skipped_done + stats.skipped_failed + stats.existing + stats.invalid
    done = sent + settled
    held = max(0, stats.queued - sent - stats.deferred - stats.in_doubt)
    to_send: float | None = None
    if total is not None:
        share = (stats.rows - settled) / stats.rows if stats.rows else 1.0
        to_send = held + max(0, total - stats.rows) * share
    per_second = sent / elapsed if elapsed > 0 else 0.0
    if to_send is not None and to_send < 0.5:
        eta: str = "0s"
    elif to_send is not None and per_second > 0:
        eta = _duration(to_send / per_second)
    else:
        eta = "?"
    shown_total = max(total, done) if total is not None else None
    return {"done": done, "total": shown_total,
            "percent": round(100 * done / shown_total, 1) if shown_total else None,
            "already_done": stats.skipped_done, "imported": stats.imported, "adopted": stats.adopted,
            "failed": stats.failed, "invalid": stats.invalid, "in_doubt": stats.in_doubt,
            "retries": stats.retries, "throttled": stats.throttled, "in_flight": stats.in_flight,
            "rate": round(stats.requests / elapsed, 1) if elapsed > 0 else 0.0,
            "limit": round(limit, 1), "eta": eta}


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Call ``update(stats)`` periodically; use as a context manager around the run."""

    def __init__(self, limit: Callable[[], float], *, total: int | None = None,
                 tty: bool | None = None) -> None:
        self._limit = limit
        self._total = total
        """Rows of the job list (an estimate), None when unknown (stdin)."""
        self._tty = sys.stderr.isatty() if tty is None else tty
        self._started = time.monotonic()
        self._live: Live | None = None

    @property
    def interval(self) -> float:
        """Seconds between updates: quick on a terminal, a log line every 5 s elsewhere."""
        return 0.5 if self._tty else 5.0

    def __enter__(self) -> Progress:
        if self._tty:
            self._live = Live(Text("starting…"), console=Console(stderr=True), transient=True,
                              auto_refresh=False)
            self._live.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.__exit__(kind, value, tb)
            self._live = None

    def update(self, stats: RunStats) -> None:
        """Show the current figures."""
        f = figures(stats, time.monotonic() - self._started, self._limit(), self._total)
        if self._live is None:
            log.info("ens_migrate.run.progress", message="progress", **f)
            return
        total = f["total"]
        counts = (f"{f['done']}/{total} {f['percent']}%" if isinstance(total, int)
                  else f"{f['done']} done")
        # Short enough for an 80-column terminal; counters that are 0 are left out.
        parts = [f"{label} {f[key]}" for label, key in (
            ("earlier", "already_done"), ("imported", "imported"), ("failed", "failed"),
            ("in doubt", "in_doubt")) if f[key]]
        line = Text(f" {counts}  {'  '.join(parts)}  {f['rate']}/s of {f['limit']}  ETA {f['eta']}")
        grid = Table.grid()
        if isinstance(total, int) and total > 0:
            done = f["done"]
            assert isinstance(done, int)
            grid.add_row(ProgressBar(total=total, completed=done, width=30), line)
        else:
            grid.add_row(line)
        self._live.update(grid, refresh=True)
