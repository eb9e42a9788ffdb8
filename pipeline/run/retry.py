"""Retry decisions (pure): full-jitter exponential backoff with caps, and a run-wide retry budget.

A retry library (stamina, tenacity) wraps one callable and loops in place. Here every attempt
must be journaled before it leaves, an ambiguous failure is followed by a *different* call (a
name lookup) before any resend, throttling does not use up attempts, and one budget is shared
by all workers, so the decision is this small pure module and the worker owns the loop.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped delay, attempts and time per job."""

    max_attempts: int = 6
    base_delay: float = 0.25
    max_delay: float = 20.0
    max_elapsed: float = 600.0

    def delay(self, *, attempts: int, elapsed: float, rand: float,
              retry_after: float | None = None, throttled: bool = False) -> float | None:
        """Seconds to wait before the next try, or None to give up.

        ``attempts`` counts the tries already made that count (throttled ones do not), ``rand``
        is uniform in [0, 1), ``retry_after`` comes from ``x-acs-retry-after``.
        """
        if not throttled and attempts >= self.max_attempts:
            return None
        exponent = min(max(attempts - 1, 0), 30)
        cap = min(self.max_delay, self.base_delay * (2.0 ** exponent))
        wait = rand * cap
        if retry_after is not None:
            wait = max(wait, retry_after)
        if elapsed + wait > self.max_elapsed:
            return None
        return wait


class RetryBudget:
    """Run-wide: retries may not exceed ``minimum + ratio * first attempts``.

    An outage then ends in a clean, resumable stop instead of a retry storm.
    """

    def __init__(self, *, ratio: float = 0.5, minimum: int = 50) -> None:
        self.ratio = ratio
        self.minimum = minimum
        self.first_attempts = 0
        self.spent = 0

    def record_first_attempt(self) -> None:
        """A job's first try went out."""
        self.first_attempts += 1

    def try_spend(self) -> bool:
        """Take one retry from the budget; False when it is exhausted."""
        if self.spent >= self.minimum + self.ratio * self.first_attempts:
            return False
        self.spent += 1
        return True
