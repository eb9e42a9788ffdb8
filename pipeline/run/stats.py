"""Run counters, why a run stopped, and the exit code they add up to (pure)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.errors import ExitCode
from pipeline.run.doubt import Outcome


class StopReason(enum.Enum):
    """Why a run ended before working through its whole list."""

    DEADLINE = "deadline"
    SIGNAL = "signal"
    RETRY_BUDGET = "retry_budget"
    BREAKER = "breaker"
    ABORT = "abort"
    INPUT = "input"
    """The job list turned out unreadable part-way (exit 65)."""
    CREDENTIALS = "credentials"
    """The credentials expired and none fresh could be had (exit 3: resumable, nothing failed)."""


@dataclass(slots=True)
class RunStats:
    """Counters of one run; only the runner's tasks mutate them (one event loop, no locks)."""

    rows: int = 0
    invalid: int = 0
    skipped_done: int = 0
    skipped_failed: int = 0
    imported: int = 0
    adopted: int = 0
    """In-doubt jobs whose image was found by name and adopted, not sent again."""
    existing: int = 0
    """Skipped because an image of that name already exists (``--skip-existing``)."""
    failed: int = 0
    in_doubt: int = 0
    deferred: int = 0
    requests: int = 0
    throttled: int = 0
    retries: int = 0
    lookups: int = 0
    in_flight: int = 0
    queued: int = 0
    """Valid jobs handed to the workers in this run."""
    parked: int = 0
    """Jobs waiting out their reconcile horizon in the delayed queue right now."""
    duplicates: int = 0
    """Second images the run's own end check found for a job (``job.duplicate``): exit 1."""
    changed: int = 0
    """Imported jobs whose row changed since: reported, not sent (``--reimport-changed`` sends)."""

    def tally(self, outcome: Outcome) -> None:
        """Count one job's outcome (``process`` returns it; a parked job's comes later)."""
        match outcome:
            case Outcome.IMPORTED:
                self.imported += 1
            case Outcome.ADOPTED:
                self.adopted += 1
            case Outcome.FAILED:
                self.failed += 1
            case Outcome.IN_DOUBT:
                self.in_doubt += 1
            case Outcome.DEFERRED:
                self.deferred += 1
            case Outcome.PARKED:
                pass

    @property
    def done(self) -> int:
        """Jobs of the list that are done, now or earlier."""
        return self.imported + self.adopted + self.skipped_done + self.existing

    def to_json(self) -> dict[str, Any]:
        """The counters as a JSON-ready dict."""
        data = asdict(self)
        data.pop("in_flight")
        data.pop("parked")
        data["done"] = self.done
        return data


def exit_code(stats: RunStats, stop: StopReason | None) -> ExitCode:
    """The exit code of design.md §3 for a finished or stopped run."""
    if stop is StopReason.ABORT:
        return ExitCode.ABORTED
    if stop is StopReason.BREAKER:
        return ExitCode.BREAKER
    if stop is StopReason.INPUT:
        return ExitCode.JOB_LIST
    if stop is not None:
        return ExitCode.STOPPED
    if stats.failed or stats.invalid or stats.in_doubt or stats.skipped_failed or stats.duplicates:
        return ExitCode.FAILED
    return ExitCode.DONE


def combine(run: int, wait: int) -> int:
    """The exit code of ``run --wait``: a run that finished (0 or 1) takes the worse of its own
    code and the wait's (1 images failed, 3 still importing); any other run code stands."""
    if run in (ExitCode.DONE, ExitCode.FAILED):
        return max(run, wait)
    return run
