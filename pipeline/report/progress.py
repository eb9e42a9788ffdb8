"""Progress for people: a live line on a terminal, a structured log line every few seconds elsewhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType

import structlog
from rich.console import Console
from rich.live import Live
from rich.text import Text

from pipeline.run.stats import RunStats

log = structlog.get_logger("ens_migrate.progress")


def _figures(stats: RunStats, elapsed: float, limit: float) -> dict[str, object]:
    finished = stats.imported + stats.adopted + stats.existing + stats.failed
    rate = stats.requests / elapsed if elapsed > 0 else 0.0
    left = stats.queued - finished - stats.deferred - stats.in_doubt
    per_second = finished / elapsed if elapsed > 0 else 0.0
    eta = f"{left / per_second:.0f}s" if per_second > 0 and left >= 0 else "?"
    return {"imported": stats.imported, "adopted": stats.adopted, "failed": stats.failed,
            "invalid": stats.invalid, "in_doubt": stats.in_doubt, "retries": stats.retries,
            "throttled": stats.throttled, "in_flight": stats.in_flight, "rate": round(rate, 1),
            "limit": round(limit, 1), "eta": eta}


class Progress:
    """Call ``update(stats)`` periodically; use as a context manager around the run."""

    def __init__(self, limit: Callable[[], float], *, tty: bool | None = None) -> None:
        self._limit = limit
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
        f = _figures(stats, time.monotonic() - self._started, self._limit())
        if self._live is None:
            log.info("ens_migrate.run.progress", message="progress", **f)
            return
        line = (f"imported {f['imported']}  adopted {f['adopted']}  failed {f['failed']}  "
                f"invalid {f['invalid']}  in doubt {f['in_doubt']}  retrying {f['retries']}  "
                f"throttled {f['throttled']}  in flight {f['in_flight']}  |  {f['rate']}/s "
                f"(limit {f['limit']})  ETA {f['eta']}")
        self._live.update(Text(line), refresh=True)
