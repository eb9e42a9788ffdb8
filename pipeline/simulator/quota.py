"""ImportImage flow control (sliding window or token bucket) and sliding-window peak measurement."""

from __future__ import annotations

from collections import deque
from typing import Protocol

WINDOW = 1.0
"""The quota's time window, seconds."""


class Limiter(Protocol):
    """Decides, at ``now`` (monotonic seconds), whether one more request is admitted."""

    def try_acquire(self, now: float) -> bool: ...


class Unlimited:
    """Quota 0: admit everything."""

    def try_acquire(self, now: float) -> bool:
        """Always admit."""
        return True


class SlidingWindowLimiter:
    """Admit while fewer than ``limit`` were admitted in ``(now - window, now]``.

    The default: it never exceeds the quota in any 1-second window, measured exactly like
    ``SlidingPeak``, and it is the most lenient limiter with that property (no spacing rule), so
    a client that keeps to the quota by its own clock is not throttled by network jitter alone.
    """

    def __init__(self, limit: int, window: float = WINDOW) -> None:
        self._limit = limit
        self._window = window
        self._admitted: deque[float] = deque()

    def try_acquire(self, now: float) -> bool:
        """Admit and record, or refuse."""
        admitted = self._admitted
        cutoff = now - self._window
        while admitted and admitted[0] <= cutoff:
            admitted.popleft()
        if len(admitted) >= self._limit:
            return False
        admitted.append(now)
        return True


class TokenBucket:
    """Capacity ``burst`` tokens refilled at ``rate``/s, starting full; up to burst + rate in a second."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._capacity = float(burst)
        self._tokens = float(burst)
        self._last: float | None = None

    def try_acquire(self, now: float) -> bool:
        """Take a token, or refuse."""
        if self._last is not None:
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


def make_limiter(quota: int, burst: int | None) -> Limiter:
    """The limiter for ``SimulatorConfig.quota``/``burst``."""
    if quota <= 0:
        return Unlimited()
    if burst is None:
        return SlidingWindowLimiter(quota)
    return TokenBucket(quota, burst)


class SlidingPeak:
    """The most events ever seen in one ``(t - window, t]`` window."""

    def __init__(self, window: float = WINDOW) -> None:
        self._window = window
        self._events: deque[float] = deque()
        self.peak = 0

    def hit(self, now: float) -> None:
        """Record one event at ``now`` (monotonic seconds, non-decreasing)."""
        events = self._events
        events.append(now)
        cutoff = now - self._window
        while events[0] <= cutoff:
            events.popleft()
        if len(events) > self.peak:
            self.peak = len(events)
