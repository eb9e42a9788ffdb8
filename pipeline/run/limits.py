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
    """At most ``limit`` grants in any window of ``window`` seconds (a log of grant times; pure).

    A grant can be taken back (``remove``) and recorded again later: the gate moves a grant to the
    moment its request is written (``RateGate.sending``). The log keeps the last ``limit`` times
    and any younger than the window, in order.
    """

    def __init__(self, limit: int, window: float) -> None:
        self.limit = max(1, limit)
        self.window = window
        self._log: deque[float] = deque()

    def _prune(self, now: float) -> None:
        log = self._log
        while len(log) > self.limit and log[0] + self.window <= now:
            log.popleft()

    def wait_time(self, now: float) -> float:
        """Seconds until one more grant fits; 0 when it fits now."""
        self._prune(now)
        log = self._log
        if len(log) < self.limit:
            return 0.0
        # The log is in order: the grant that must leave first is the limit-th newest.
        return max(0.0, log[len(log) - self.limit] + self.window - now)

    def record(self, now: float) -> None:
        """Record a grant at ``now`` (not before any recorded grant)."""
        self._log.append(now)
        self._prune(now)

    def remove(self, at: float) -> None:
        """Take back the grant recorded at ``at`` (nothing when it has left the log).

        Searched from the newest end: a grant is taken back when its request is written, with
        only the grants made since after it (at most the requests in flight), whereas the log
        holds ``limit`` entries (100,000 at ``--rate 100000``)."""
        log = self._log
        for i in range(len(log) - 1, -1, -1):
            if log[i] == at:
                del log[i]
                return
            if log[i] < at:
                return

    def count_since(self, since: float) -> int:
        """Grants at or after ``since`` (among those the log holds)."""
        return sum(1 for t in self._log if t >= since)


@dataclass(frozen=True, slots=True)
class AimdConfig:
    """Tunables of the adaptive rate."""

    decrease: float = 0.95
    """On a throttle the rate is at most this fraction of what it was."""
    headroom: float = 0.97
    """On a throttle the rate is set near the accepted rate of the last second, times this."""
    increase_per_second: float = 0.5
    """Additive increase, requests/s gained per second without throttling (the probe's first step)."""
    floor: float = 0.2
    recovery: float = 0.5
    """Below the known level (what the server accepted in the second before a throttle) the rate
    climbs back by this fraction of that level per second: the dip after a throttle is brief."""
    hold: float = 2.0
    """Seconds spent at the known level after a throttle before probing above it. A probe
    throttled at that same level doubles the hold (up to ``max_hold``): a quota that does not
    move is probed less and less often; a level that moved resets it."""
    max_hold: float = 32.0
    learned_hold: float = 32.0
    """The hold for a rate learned by an earlier run (``start``): a level already confirmed."""
    probe_doubling: float = 2.0
    """Above the known level the additive step doubles every this many seconds without a
    throttle, so a level learned too low (or a quota that grew) is found again in seconds."""
    same_level: float = 0.05
    """Two throttles within this fraction of each other are at the same level."""


class AimdRate:
    """Multiplicative decrease on ``Throttling*``, additive increase after; never above the ceiling.

    A throttle answer lowers the rate only if its request was sent after the last decrease
    (one reaction per congestion event, like TCP), so a burst of throttles counts once. The
    accepted rate of the second before a throttle is the *known level*: after the decrease the
    rate returns to it quickly, holds there, then probes above it with a step that grows (like
    TCP CUBIC's plateau near the last maximum). Before any throttle the increase is linear.
    """

    def __init__(self, ceiling: float, *, start: float | None = None,
                 config: AimdConfig | None = None, now: float = 0.0, learned: bool = False) -> None:
        self.ceiling = ceiling
        self.config = config or AimdConfig()
        self.rate = min(ceiling, start) if start else ceiling
        self.epoch = 0
        self.throttles = 0
        self.decreases = 0
        self._last_change = now
        self.known: float | None = self.rate if learned and start else None
        """The level the server accepted before the last throttle (or a learned start rate)."""
        self.hold = self.config.learned_hold if self.known else self.config.hold
        self._hold_until = now + self.hold

    def on_success(self, now: float) -> bool:
        """Grow (see the class docstring); return True when the rate changed."""
        if self.rate >= self.ceiling:
            self._last_change = now
            return False
        cfg = self.config
        known = self.known
        if known is None:
            target = self.rate + (now - self._last_change) * cfg.increase_per_second
        elif self.rate < known:
            step = max(cfg.increase_per_second, known * cfg.recovery)
            target = self.rate + (now - self._last_change) * step
            if target >= known:  # back at the level: exactly, so its whole second is granted
                self.rate = min(self.ceiling, known)
                self._last_change = now
                return True
        elif now <= self._hold_until:
            self._last_change = now
            return False
        else:
            since = max(self._last_change, self._hold_until)
            step = cfg.increase_per_second * 2.0 ** ((now - self._hold_until) / cfg.probe_doubling)
            target = self.rate + (now - since) * step
        if target - self.rate < 0.05:
            return False
        self.rate = min(self.ceiling, target)
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
            level = min(self.ceiling, float(accepted_last_second))
            same = self.known is not None and abs(level - self.known) <= cfg.same_level * self.known
            self.hold = min(cfg.max_hold, self.hold * 2) if same else cfg.hold
            self.known = level
        else:
            self.known = None
            self.hold = cfg.hold
        # The floor yields to the ceiling: ``--rate`` below the floor is still never exceeded.
        self.rate = min(self.ceiling, max(cfg.floor, target))
        self._hold_until = now + self.hold
        self.epoch += 1
        self.decreases += 1
        self._last_change = now
        return True


@dataclass(slots=True)
class Grant:
    """One ImportImage send granted by ``RateGate.acquire_grant``."""

    epoch: int
    """The AIMD epoch to hand back with a throttle answer (``RateGate.on_throttle``)."""
    at: float
    """Where the grant stands in the window: its grant time, then the time its request was
    written (``RateGate.sending``)."""
    written: bool = False


class RateGate:
    """Grants ImportImage sends: paced by aiolimiter, capped by a sliding window, adaptive.

    The promise is the cap: never more than ``floor(rate)`` sends in any window of
    ``1 + guard`` seconds, the first second included (aiolimiter alone would allow an initial
    burst on top of the steady rate). A send counts from its grant, and from the moment its
    request is written once the transport says so (``sending``): a request that waited for a
    new connection (TCP and TLS over a WAN: 100 ms or more) moves its place in the window to
    when it left, so the grants after it keep the cap at the server. ``guard`` absorbs the
    jitter between writing and arrival; it costs ``guard / (1 + guard)`` of the rate (2% at
    the default: 20 ms at 50/s). Measured against the simulator on loopback, a written request
    arrives within 0.5-2 ms.
    """

    def __init__(self, ceiling: float, *, start: float | None = None, guard: float = 0.02,
                 clock: Clock = time.monotonic, sleep: Sleep = anyio.sleep,
                 aimd: AimdConfig | None = None) -> None:
        if ceiling <= 0:
            raise ValueError("rate must be positive")
        self._clock = clock
        self._sleep = sleep
        self._guard = guard
        floor = (aimd or AimdConfig()).floor
        if start is not None and not (math.isfinite(start) and start >= min(floor, ceiling)):
            start = None  # a learned rate that is not a number or below the floor: not a level
        # ``start`` is a rate an earlier run learned: trusted as the known level, probed later.
        self.aimd = AimdRate(ceiling, start=start, config=aimd, now=clock(), learned=True)
        self._window = SlidingWindow(*self._window_for(self.aimd.rate))
        self._pacer = self._make_pacer(self.aimd.rate)
        self._lock = anyio.Lock()
        self._paused_until = 0.0
        self._accepted: deque[float] = deque()
        self.grants = 0
        self._first_grant: float | None = None

    def _window_for(self, rate: float) -> tuple[int, float]:
        """(grants, seconds) of the cap: ``floor(rate)`` per ``1 + guard`` seconds, or below one
        request per second one grant per ``(1 + guard) / rate`` seconds."""
        if rate < 1.0:
            return 1, (1.0 + self._guard) / rate
        return math.floor(rate + 1e-9), 1.0 + self._guard

    @staticmethod
    def _make_pacer(rate: float) -> AsyncLimiter:
        # A bucket of two at the rate (one below 1/s: the window is then 1/rate long): no initial
        # burst worth the name, and a wake-up that came
        # late is made up on the next grant instead of accumulating (capacity one would drift
        # below the rate by the event loop's timer lateness). The window is the hard cap.
        return AsyncLimiter(2, 2.0 / rate)

    @property
    def rate(self) -> float:
        """The current admitted rate (requests per second)."""
        return self.aimd.rate

    async def acquire(self) -> int:
        """Wait for a slot; return the AIMD epoch to hand back with a throttle answer (for a
        caller that cannot say when its request is written: the grant time stands)."""
        return (await self.acquire_grant()).epoch

    async def acquire_grant(self) -> Grant:
        """Wait for a slot; the grant to pass to ``sending`` when the request is written."""
        async with self._lock:
            await self._pacer.acquire()
            while True:
                now = self._clock()
                wait = max(self._window.wait_time(now), self._paused_until - now)
                if wait <= 0:
                    break
                await self._sleep(wait)
            now = self._clock()
            self._window.record(now)
            if self._first_grant is None:
                self._first_grant = now
            self.grants += 1
            return Grant(self.aimd.epoch, now)

    async def sending(self, grant: Grant) -> None:
        """The grant's request is about to be written on a ready connection: move its place in
        the window from the grant to now (waiting only if the window is full without it: the
        connection took longer than the window). A second write under the same grant (a resend
        with renewed credentials) takes a place of its own. Pauses and pacing are not waited
        for: the request was granted."""
        if not grant.written:
            self._window.remove(grant.at)
            grant.written = True
        while (wait := self._window.wait_time(self._clock())) > 0:
            await self._sleep(wait)
        grant.at = self._clock()
        self._window.record(grant.at)

    @property
    def learned_rate(self) -> float:
        """The rate to remember for the next run (``rate.learned``): the known level with the
        decrease's headroom, not a probe in progress; the next run starts 5% above it."""
        known = self.aimd.known
        if known is None:
            return self.aimd.rate
        return min(self.aimd.rate, known * self.aimd.config.headroom)

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
        accepted = len(self._accepted)
        if self._first_grant is not None and now - self._first_grant < 1.0:
            # The server's first second is not over: many accepted answers are still on their
            # way, and counting only the arrived ones sets the level far too low (seconds spent
            # climbing back). Count what was sent, less the throttles: a slight overestimate
            # that the next throttle, a full second later, corrects.
            accepted = max(accepted, self._window.count_since(now - 1.0) - self.aimd.throttles - 1)
        if self.aimd.on_throttle(sent_epoch, accepted, now):
            self._resize()

    def _resize(self) -> None:
        rate = self.aimd.rate
        self._window.limit, self._window.window = self._window_for(rate)
        self._pacer = self._make_pacer(rate)


class Lookup:
    """The lookup budget (DescribeSelfImages/DescribeImages, a quota of their own): every page of
    every listing of a run takes a grant here.

    The promise is the cap: at most ``floor(rate)`` grants in any window of ``1 + guard`` seconds
    (a rate below 1/s: one grant per ``1/rate + guard`` seconds). A burst up to the cap is allowed
    (the run's probe opens its connections side by side); ``guard`` absorbs the jitter between a
    grant and its arrival at the server. A throttled page holds every lookup (``backoff``).
    """

    def __init__(self, rate: float, *, guard: float = 0.05, clock: Clock = time.monotonic,
                 sleep: Sleep = anyio.sleep) -> None:
        if rate <= 0:
            raise ValueError("lookup rate must be positive")
        self.rate = rate
        limit = max(1, math.floor(rate + 1e-9))
        self._window = SlidingWindow(limit, max(1.0, limit / rate) + guard)
        self._clock = clock
        self._sleep = sleep
        self._lock = anyio.Lock()
        self._paused_until = 0.0
        self.grants = 0

    @classmethod
    def per_second(cls, rate: float) -> Lookup:
        """A lookup pacer at ``rate`` calls per second."""
        return cls(rate)

    @property
    def limiter(self) -> Lookup:
        """Itself (callers written for an ``aiolimiter.AsyncLimiter`` call ``limiter.acquire()``)."""
        return self

    async def acquire(self) -> None:
        """Wait until one more lookup fits the cap (and any throttle pause is over)."""
        async with self._lock:
            while True:
                now = self._clock()
                wait = max(self._window.wait_time(now), self._paused_until - now)
                if wait <= 0:
                    break
                await self._sleep(wait)
            self._window.record(self._clock())
            self.grants += 1

    def backoff(self, seconds: float) -> None:
        """Hold every lookup for ``seconds`` from now (the server throttled one)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)
