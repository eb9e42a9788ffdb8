"""The values of a job's way to an outcome: lookup answers, outcomes, the next step (pure)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from pipeline.ens.classify import Disposition
from pipeline.run.retry import RetryPolicy


@dataclass(frozen=True, slots=True)
class Found:
    """The lookup found an image of the job's name that the journal does not hold yet."""

    image_id: str
    others: tuple[str, ...] = ()
    """More fresh images of that name (a duplicate already)."""


@dataclass(frozen=True, slots=True)
class Absent:
    """The lookup found no fresh image. Before the horizon this proves nothing."""


@dataclass(frozen=True, slots=True)
class Unknown:
    """The lookup could not be made (refused, or failed every try): the job stays in doubt."""

    code: str


LookupResult = Found | Absent | Unknown


class Outcome(enum.Enum):
    """How one job left ``process`` (the run tallies it: ``RunStats.tally``)."""

    IMPORTED = "imported"
    ADOPTED = "adopted"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"
    DEFERRED = "deferred"
    """Not sent (the run is stopping, or credentials expired): still pending."""
    PARKED = "parked"
    """Waiting out its horizon in the delayed queue: its real outcome is tallied when it ends."""


class StepKind(enum.Enum):
    """What the worker does after a failed ImportImage."""

    RETRY = "retry"
    """Wait ``delay``, then send again (nothing was created)."""
    WAIT_THROTTLED = "wait_throttled"
    """Throttled: the rate gate slows down; wait ``delay`` (the server's ``retry_after``), send again."""
    RESIGN = "resign"
    """Sign afresh and send at once (a timestamp refused)."""
    RECONCILE = "reconcile"
    """The request may have been processed: look it up, resend only after the horizon."""
    FAIL = "fail"
    """Record the job failed (``reason`` says why, when it is not the error itself)."""


@dataclass(frozen=True, slots=True)
class Step:
    """One decision of ``next_step``."""

    kind: StepKind
    delay: float = 0.0
    reason: str | None = None


def next_step(disposition: Disposition, tries: int, elapsed: float, retry_after: float | None, *,
              resigned: bool, policy: RetryPolicy, rand: float) -> Step:
    """The step after a failed ImportImage, from what the error means (``classify_import``), the
    tries that counted so far (this one included), the job's elapsed seconds, and the server's
    ``retry_after``. Throttling uses no try; a resign is allowed once per job."""
    match disposition:
        case Disposition.THROTTLED:
            wait = policy.delay(attempts=tries, elapsed=elapsed, rand=rand, retry_after=retry_after,
                                throttled=True)
            if wait is None:
                return Step(StepKind.FAIL, reason="gave up: throttled for longer than the per-job time cap")
            # The gate paces the resend; only the server's own pause is waited here.
            return Step(StepKind.WAIT_THROTTLED, min(wait, retry_after or 0.0))
        case Disposition.RESIGN if not resigned:
            return Step(StepKind.RESIGN)
        case Disposition.RESIGN | Disposition.PERMANENT:
            return Step(StepKind.FAIL)
        case Disposition.AMBIGUOUS:
            return Step(StepKind.RECONCILE)
        case _:
            return retry_step(tries, elapsed, policy=policy, rand=rand)


def retry_step(tries: int, elapsed: float, *, policy: RetryPolicy, rand: float) -> Step:
    """Resend after backoff, or give up when the tries or the time per job are spent."""
    wait = policy.delay(attempts=tries, elapsed=elapsed, rand=rand)
    if wait is None:
        return Step(StepKind.FAIL, reason=f"gave up after {tries} attempts")
    return Step(StepKind.RETRY, wait)


@dataclass(slots=True)
class Doubt:
    """A job that had an ambiguous attempt in this run (or inherited one): checked once more at
    the run's end, one horizon after its last send, for a second image."""

    name: str
    fingerprint: str
    last_sent: float
    """Monotonic time of the job's last ImportImage (or when its inherited doubt was found)."""
    image_id: str | None = None
    """The image the journal now holds for it (set when imported or adopted)."""
    known_ids: tuple[str, ...] = field(default=())


def seconds_since(ts: str | None, now_wall: float) -> float | None:
    """Seconds between a journal timestamp (``2026-11-27T15:40:00.123Z``) and ``now_wall``."""
    if not ts:
        return None
    try:
        moment = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    return now_wall - moment
