"""Run counters, why a run stopped, and the exit code they add up to (pure)."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any


class StopReason(enum.Enum):
    """Why a run ended before working through its whole list."""

    DEADLINE = "deadline"
    SIGNAL = "signal"
    RETRY_BUDGET = "retry_budget"
    BREAKER = "breaker"
    ABORT = "abort"
    INPUT = "input"
    """The job list turned out unreadable part-way (exit 65)."""


EXIT_MEANINGS: dict[int, str] = {
    0: "every job in the list is done",
    1: "the run finished, but some jobs failed",
    2: "usage or configuration error",
    3: "stopped early and resumable",
    4: "aborted by the failure circuit breaker",
    65: "the job list file is unreadable",
    75: "another run holds the journal lock",
    130: "hard abort (second signal)",
}


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

    @property
    def done(self) -> int:
        """Jobs of the list that are done, now or earlier."""
        return self.imported + self.adopted + self.skipped_done + self.existing

    def to_json(self) -> dict[str, Any]:
        """The counters as a JSON-ready dict."""
        data = asdict(self)
        data.pop("in_flight")
        data["done"] = self.done
        return data


def exit_code(stats: RunStats, stop: StopReason | None) -> int:
    """The exit code of design.md §3 for a finished or stopped run."""
    if stop is StopReason.ABORT:
        return 130
    if stop is StopReason.BREAKER:
        return 4
    if stop is StopReason.INPUT:
        return 65
    if stop is not None:
        return 3
    if stats.failed or stats.invalid or stats.in_doubt or stats.skipped_failed:
        return 1
    return 0
