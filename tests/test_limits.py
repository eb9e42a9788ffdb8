"""Admission control: the sliding-window cap, AIMD, and the RateGate that combines them.

RateGate paces with aiolimiter, which reads the real event-loop clock. The virtual-clock tests
use ``UnpacedGate`` (tests/fakes.py): a RateGate whose ``_make_pacer`` returns a no-op, so the
sliding-window cap, retry-after pauses and AIMD (the parts that make the promise) run on a fake
clock whose sleep advances it. One real-clock test checks the whole gate, pacer included.
"""

from __future__ import annotations

import itertools
import math

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.run.limits import AimdConfig, AimdRate, RateGate, SlidingWindow
from tests.fakes import FakeClock, UnpacedGate


def max_in_window(times: list[float], length: float, *, closed: bool) -> int:
    """The most grants in any window of ``length`` starting at a grant."""
    ordered = sorted(times)
    best = 0
    j = 0
    for i, start in enumerate(ordered):
        j = max(j, i)
        while j < len(ordered) and (ordered[j] <= start + length if closed else ordered[j] < start + length):
            j += 1
        best = max(best, j - i)
    return best


# --- SlidingWindow ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 12),
    window=st.floats(0.05, 3.0),
    gaps=st.lists(st.floats(0.0, 0.5), min_size=1, max_size=120),
)
def test_sliding_window_never_exceeds_limit(limit: int, window: float, gaps: list[float]) -> None:
    """Granting each request as soon as ``wait_time`` allows never puts more than ``limit`` grants
    in any window of ``window`` seconds (half-open, as the window is defined)."""
    sw = SlidingWindow(limit, window)
    now = 100.0
    grants: list[float] = []
    for gap in gaps:
        now += gap
        while (wait := sw.wait_time(now)) > 0:
            now += wait
        sw.record(now)
        grants.append(now)
    assert max_in_window(grants, window, closed=False) <= limit


@settings(max_examples=100, deadline=None)
@given(limit=st.integers(1, 10), window=st.floats(0.1, 2.0), old=st.integers(0, 30))
def test_sliding_window_grants_at_once_below_limit(limit: int, window: float, old: int) -> None:
    """While fewer than ``limit`` grants lie in the current window, another fits now (wait 0),
    however many grants came before it."""
    sw = SlidingWindow(limit, window)
    for i in range(old):
        sw.record(i * 3 * window)
    base = old * 3 * window
    for i in range(limit - 1):
        sw.record(base + i * window / (2 * limit))
    assert sw.wait_time(base + window / 2) == 0.0


def test_sliding_window_wait_is_until_oldest_leaves() -> None:
    """A full window waits exactly until its oldest grant drops out."""
    sw = SlidingWindow(3, 1.0)
    for t in (10.0, 10.2, 10.4):
        sw.record(t)
    assert sw.wait_time(10.5) == pytest.approx(0.5)
    assert sw.wait_time(11.0) == 0.0


def test_sliding_window_shrunk_limit_applies() -> None:
    """Lowering ``limit`` (AIMD decrease) makes the next grant wait for the newer grants."""
    sw = SlidingWindow(4, 1.0)
    for t in (0.0, 0.1, 0.2, 0.3):
        sw.record(t)
    sw.limit = 2
    assert sw.wait_time(0.35) == pytest.approx(0.2 + 1.0 - 0.35)


def test_sliding_window_limit_at_least_one() -> None:
    """A limit below one is raised to one (a rate under 1/s still admits a request per window)."""
    assert SlidingWindow(0, 1.0).limit == 1


def test_sliding_window_count_since() -> None:
    """``count_since`` counts grants at or after a time."""
    sw = SlidingWindow(5, 1.0)
    for t in (1.0, 2.0, 3.0):
        sw.record(t)
    assert sw.count_since(2.0) == 2


# --- AimdRate --------------------------------------------------------------------------------


def test_aimd_decreases_once_per_epoch() -> None:
    """A burst of throttles for requests sent in the same epoch lowers the rate once."""
    aimd = AimdRate(100.0)
    assert aimd.on_throttle(0, 0, now=1.0) is True
    after_first = aimd.rate
    assert aimd.on_throttle(0, 0, now=1.0) is False
    assert aimd.on_throttle(0, 0, now=1.1) is False
    assert aimd.rate == after_first
    assert (aimd.decreases, aimd.throttles, aimd.epoch) == (1, 3, 1)


def test_aimd_throttle_from_current_epoch_decreases_again() -> None:
    """A throttle for a request sent after the last decrease is a new congestion event."""
    aimd = AimdRate(100.0)
    aimd.on_throttle(0, 0, now=1.0)
    assert aimd.on_throttle(1, 0, now=2.0) is True
    assert aimd.rate == pytest.approx(100.0 * 0.95 * 0.95)
    assert aimd.decreases == 2


def test_aimd_decrease_follows_accepted_rate() -> None:
    """On a throttle the rate drops to near what was accepted in the last second, if lower."""
    aimd = AimdRate(100.0)
    aimd.on_throttle(0, accepted_last_second=10, now=1.0)
    assert aimd.rate == pytest.approx(10 * 0.97)


def test_aimd_never_below_floor() -> None:
    """Repeated congestion never takes the rate under the floor."""
    aimd = AimdRate(10.0, config=AimdConfig(floor=0.5))
    for epoch in range(200):
        aimd.on_throttle(epoch, 0, now=float(epoch))
    assert aimd.rate == pytest.approx(0.5)


def test_aimd_grows_additively() -> None:
    """Without throttling the rate climbs ``increase_per_second`` per second, up to the ceiling."""
    aimd = AimdRate(100.0, start=10.0, now=0.0)
    assert aimd.on_success(2.0) is True
    assert aimd.rate == pytest.approx(11.0)
    assert aimd.on_success(4.0) is True
    assert aimd.rate == pytest.approx(12.0)


def test_aimd_small_gains_accumulate() -> None:
    """Successes closer together than one step do not lose the time between them."""
    aimd = AimdRate(100.0, start=10.0, now=0.0)
    assert aimd.on_success(0.05) is False
    assert aimd.on_success(0.1) is True
    assert aimd.rate == pytest.approx(10.05)


def test_aimd_start_capped_by_ceiling() -> None:
    """A start rate above the ceiling (a learned rate from a faster run) starts at the ceiling."""
    assert AimdRate(5.0, start=50.0).rate == 5.0


@settings(max_examples=300, deadline=None)
@given(
    ceiling=st.floats(0.05, 500.0),
    events=st.lists(
        st.tuples(st.booleans(), st.floats(0.0, 5.0), st.integers(0, 600), st.integers(-1, 1)),
        max_size=60),
)
def test_aimd_stays_within_floor_and_ceiling(
        ceiling: float, events: list[tuple[bool, float, int, int]]) -> None:
    """Whatever mix of successes and throttles arrives, floor <= rate <= ceiling (the floor
    yields to a ceiling set below it: ``--rate`` is the promise)."""
    aimd = AimdRate(ceiling)
    floor = min(aimd.config.floor, ceiling)
    now = 0.0
    for is_throttle, dt, accepted, epoch_offset in events:
        now += dt
        if is_throttle:
            aimd.on_throttle(max(0, aimd.epoch + epoch_offset), accepted, now)
        else:
            aimd.on_success(now)
        assert floor - 1e-9 <= aimd.rate <= ceiling + 1e-9


def test_aimd_throttle_never_above_ceiling_when_ceiling_below_floor() -> None:
    """With ``--rate`` under the AIMD floor (0.1/s), a throttle must not raise the rate to the floor."""
    aimd = AimdRate(0.1)
    aimd.on_throttle(0, 0, now=1.0)
    assert aimd.rate <= 0.1


# --- RateGate on a virtual clock ----------------------------------------------------------------


@pytest.mark.asyncio
@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(1.0, 40.0),
    gaps=st.lists(st.floats(0.0, 0.3), min_size=1, max_size=150),
)
async def test_gate_cap_holds_for_any_request_times(rate: float, gaps: list[float]) -> None:
    """Sequential acquisitions at arbitrary times never get more than floor(rate) grants in
    any closed 1-second window."""
    clock = FakeClock(0.0)
    gate = UnpacedGate(rate, clock=clock, sleep=clock.sleep)
    grants: list[float] = []
    for gap in gaps:
        clock.now += gap
        await gate.acquire()
        grants.append(clock.now)
    assert max_in_window(grants, 1.0, closed=True) <= int(rate)


@pytest.mark.asyncio
async def test_gate_cap_holds_for_concurrent_acquirers() -> None:
    """Thirty tasks acquiring at once at rate 7: at most 7 grants in any 1-second window, and
    every task is granted."""
    clock = FakeClock(0.0)
    gate = UnpacedGate(7.0, clock=clock, sleep=clock.sleep)
    grants: list[float] = []

    async def take() -> None:
        await gate.acquire()
        grants.append(clock.now)

    async with anyio.create_task_group() as tg:
        for _ in range(30):
            tg.start_soon(take)
    assert len(grants) == 30 == gate.grants
    assert max_in_window(grants, 1.0, closed=True) <= 7


@pytest.mark.asyncio
async def test_gate_first_second_has_no_burst() -> None:
    """The first second is capped too: no initial burst above floor(rate)."""
    clock = FakeClock(0.0)
    gate = UnpacedGate(5.0, clock=clock, sleep=clock.sleep)
    for _ in range(6):
        await gate.acquire()
    assert clock.now >= 1.0


@pytest.mark.asyncio
async def test_gate_retry_after_pauses_everyone() -> None:
    """A throttle carrying retry-after holds every grant back until the pause ends."""
    clock = FakeClock(0.0)
    gate = UnpacedGate(100.0, clock=clock, sleep=clock.sleep)
    epoch = await gate.acquire()
    gate.on_throttle(epoch, retry_after=2.5)
    await gate.acquire()
    assert clock.now >= 2.5


@pytest.mark.asyncio
async def test_gate_throttle_lowers_rate_and_cap() -> None:
    """After a throttle the cap follows the lowered rate: fewer grants fit in a second."""
    clock = FakeClock(0.0)
    gate = UnpacedGate(10.0, clock=clock, sleep=clock.sleep)
    epoch = await gate.acquire()
    for _ in range(4):
        gate.on_success()
    gate.on_throttle(epoch, retry_after=None)
    assert gate.rate == pytest.approx(min(10 * 0.95, 4 * 0.97))
    clock.now += 5.0
    grants: list[float] = []
    for _ in range(12):
        await gate.acquire()
        grants.append(clock.now)
    assert max_in_window(grants, 1.0, closed=True) <= 3


@pytest.mark.asyncio
async def test_gate_stale_throttle_ignored() -> None:
    """Throttles for requests granted before the last decrease do not lower the rate again."""
    clock = FakeClock(0.0)
    gate = UnpacedGate(50.0, clock=clock, sleep=clock.sleep)
    epochs = [await gate.acquire() for _ in range(5)]
    gate.on_throttle(epochs[0], None)
    lowered = gate.rate
    for epoch in epochs[1:]:
        gate.on_throttle(epoch, None)
    assert gate.rate == lowered
    assert await gate.acquire() == epochs[0] + 1


def test_gate_rejects_non_positive_rate() -> None:
    """A rate of zero or less is refused at construction."""
    with pytest.raises(ValueError, match="positive"):
        RateGate(0.0)


# --- RateGate on the real clock ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_gate_real_clock_cap_at_rate_50() -> None:
    """Real pacer and clock: 150 grants (3x the rate) to 20 tasks at rate 50 never put more than
    50 in any window of 1 + guard = 1.02 s (half-open, as the gate's sliding window is defined).
    The times counted are the gate's own (``Grant.at``, where it records the grant), not a stamp
    taken when the task resumes: a process preempted between the two (CPU load) stamped a grant
    late, and two grants 1.02 s apart could count as one window (51). Nothing sleeps for timing."""
    gate = RateGate(50.0)
    grants: list[float] = []

    async def take(n: int) -> None:
        for _ in range(n):
            grants.append((await gate.acquire_grant()).at)

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(take, 150 // 20 + (1 if i < 150 % 20 else 0))
    assert len(grants) == 150 == gate.grants
    assert max_in_window(grants, 1.02, closed=False) <= 50


@pytest.mark.asyncio
@pytest.mark.parametrize("rate", [0.5, 0.25, 0.9])
async def test_gate_below_one_per_second_grants_one_per_1_over_rate(rate: float) -> None:
    """``--rate 0.5`` sent 2 requests within about 1 s: below 1/s the window is 1/rate seconds,
    so no two grants are closer than that (the cap, the pacer's bucket of two aside)."""
    clock = FakeClock(0.0)
    gate = UnpacedGate(rate, clock=clock, sleep=clock.sleep)
    grants: list[float] = []
    for _ in range(6):
        await gate.acquire()
        grants.append(clock.now)
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    assert min(gaps) >= 1.0 / rate


@pytest.mark.parametrize("learned", [math.nan, math.inf, -1.0, 0.0, 1e-9, 0.1])
def test_gate_ignores_a_learned_rate_that_is_not_finite_or_below_the_floor(learned: float) -> None:
    """A learned rate of NaN, infinity or below the floor (0.2/s) hung the next run: ignored."""
    gate = RateGate(10.0, start=learned)
    assert gate.rate == 10.0
    assert gate.aimd.known is None


def test_gate_keeps_a_sane_learned_rate() -> None:
    gate = RateGate(10.0, start=4.0)
    assert gate.rate == 4.0
