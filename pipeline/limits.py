"""Admission control for ImportImage: a hard per-window cap, smooth pacing, and AIMD on throttling."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from aiolimiter import AsyncLimiter

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class SlidingWindow:
    """At most ``limit`` grants in any window of ``window`` seconds (a log of grant times; pure)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = max(1, limit)
        self.window = window
        self._log: deque[float] = deque()

    def wait_time(self, now: float) -> float:
        """Seconds until one more grant fits; 0 when it fits now."""
        while len(self._log) > self.limit:
            self._log.popleft()
        if len(self._log) < self.limit:
            return 0.0
        return max(0.0, self._log[0] + self.window - now)

    def record(self, now: float) -> None:
        """Record a grant at ``now``."""
        self._log.append(now)
        while len(self._log) > self.limit:
            self._log.popleft()

    def count_since(self, since: float) -> int:
        """Grants at or after ``since`` (among the last ``limit``)."""
        return sum(1 for t in self._log if t >= since)


@dataclass(frozen=True, slots=True)
class AimdConfig:
    """Tunables of the adaptive rate."""

    decrease: float = 0.95
    """On a throttle the rate is at most this fraction of what it was."""
    headroom: float = 0.97
    """On a throttle the rate is set near the accepted rate of the last second, times this."""
    increase_per_second: float = 0.5
    """Additive increase, requests/s gained per second without throttling."""
    floor: float = 0.2


class AimdRate:
    """Multiplicative decrease on ``Throttling*``, additive increase after; never above the ceiling.

    A throttle answer lowers the rate only if its request was sent after the last decrease
    (one reaction per congestion event, like TCP), so a burst of throttles counts once.
    """

    def __init__(self, ceiling: float, *, start: float | None = None,
                 config: AimdConfig | None = None, now: float = 0.0) -> None:
        self.ceiling = ceiling
        self.config = config or AimdConfig()
        self.rate = min(ceiling, start) if start else ceiling
        self.epoch = 0
        self.throttles = 0
        self.decreases = 0
        self._last_change = now

    def on_success(self, now: float) -> bool:
        """Grow additively; return True when the rate changed."""
        if self.rate >= self.ceiling:
            self._last_change = now
            return False
        gained = (now - self._last_change) * self.config.increase_per_second
        if gained < 0.05:
            return False
        self.rate = min(self.ceiling, self.rate + gained)
        self._last_change = now
        return True

    def on_throttle(self, sent_epoch: int, accepted_last_second: int, now: float) -> bool:
        """React to a throttle answer; return True when the rate dropped."""
        self.throttles += 1
        if sent_epoch < self.epoch:
            return False
        cfg = self.config
        target = self.rate * cfg.decrease
        if accepted_last_second > 0:
            target = min(target, accepted_last_second * cfg.headroom)
        # The floor yields to the ceiling: ``--rate`` below the floor is still never exceeded.
        self.rate = min(self.ceiling, max(cfg.floor, target))
        self.epoch += 1
        self.decreases += 1
        self._last_change = now
        return True


class RateGate:
    """Grants ImportImage sends: paced by aiolimiter, capped by a sliding window, adaptive.

    The promise is the cap: never more than ``floor(rate)`` grants in any window of
    ``1 + guard`` seconds, the first second included (aiolimiter alone would allow an initial
    burst on top of the steady rate). ``guard`` absorbs jitter between grant and arrival at the
    server; it costs ``guard / (1 + guard)`` of the rate (2% at the default).
    """

    def __init__(self, ceiling: float, *, start: float | None = None, guard: float = 0.02,
                 clock: Clock = time.monotonic, sleep: Sleep = anyio.sleep,
                 aimd: AimdConfig | None = None) -> None:
        if ceiling <= 0:
            raise ValueError("rate must be positive")
        self._clock = clock
        self._sleep = sleep
        self._window_len = 1.0 + guard
        self.aimd = AimdRate(ceiling, start=start, config=aimd, now=clock())
        self._window = SlidingWindow(self._limit_for(self.aimd.rate), self._window_len)
        self._pacer = self._make_pacer(self.aimd.rate)
        self._lock = anyio.Lock()
        self._paused_until = 0.0
        self._accepted: deque[float] = deque()
        self.grants = 0

    @staticmethod
    def _limit_for(rate: float) -> int:
        return max(1, math.floor(rate + 1e-9))

    @staticmethod
    def _make_pacer(rate: float) -> AsyncLimiter:
        # A bucket of two at the rate: no initial burst worth the name, and a wake-up that came
        # late is made up on the next grant instead of accumulating (capacity one would drift
        # below the rate by the event loop's timer lateness). The window is the hard cap.
        return AsyncLimiter(2, 2.0 / rate)

    @property
    def rate(self) -> float:
        """The current admitted rate (requests per second)."""
        return self.aimd.rate

    async def acquire(self) -> int:
        """Wait for a slot; return the AIMD epoch to hand back with a throttle answer."""
        async with self._lock:
            await self._pacer.acquire()
            while True:
                now = self._clock()
                wait = max(self._window.wait_time(now), self._paused_until - now)
                if wait <= 0:
                    break
                await self._sleep(wait)
            self._window.record(self._clock())
            self.grants += 1
            return self.aimd.epoch

    def on_success(self) -> None:
        """An ImportImage was accepted (not throttled)."""
        now = self._clock()
        self._accepted.append(now)
        while self._accepted and self._accepted[0] < now - 1.0:
            self._accepted.popleft()
        if self.aimd.on_success(now):
            self._resize()

    def on_throttle(self, sent_epoch: int, retry_after: float | None) -> None:
        """A ``Throttling*`` answer: slow down, and pause everyone for ``retry_after`` seconds."""
        now = self._clock()
        while self._accepted and self._accepted[0] < now - 1.0:
            self._accepted.popleft()
        if retry_after:
            self._paused_until = max(self._paused_until, now + retry_after)
        if self.aimd.on_throttle(sent_epoch, len(self._accepted), now):
            self._resize()

    def _resize(self) -> None:
        rate = self.aimd.rate
        self._window.limit = self._limit_for(rate)
        self._pacer = self._make_pacer(rate)


@dataclass(frozen=True, slots=True)
class Lookup:
    """Paces the lookups (DescribeSelfImages) used for reconciling; a separate API quota."""

    limiter: AsyncLimiter

    @classmethod
    def per_second(cls, rate: float) -> Lookup:
        """A lookup pacer at ``rate`` calls per second."""
        return cls(AsyncLimiter(1, 1.0 / rate))
