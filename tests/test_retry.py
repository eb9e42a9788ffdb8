"""Retry decisions: full-jitter backoff with caps, and the run-wide retry budget."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.run.retry import RetryBudget, RetryPolicy
from tests import fakes  # noqa: F401  (keeps Hypothesis' cache out of the work tree)

POLICY = RetryPolicy(max_attempts=6, base_delay=0.5, max_delay=20.0, max_elapsed=600.0)


@settings(max_examples=300, deadline=None)
@given(attempts=st.integers(0, 5), rand=st.floats(0.0, 1.0, exclude_max=True),
       elapsed=st.floats(0.0, 500.0))
def test_full_jitter_within_zero_and_cap(attempts: int, rand: float, elapsed: float) -> None:
    """Every delay lies in [0, min(max_delay, base * 2**(attempts-1))]."""
    delay = POLICY.delay(attempts=attempts, elapsed=elapsed, rand=rand)
    cap = min(POLICY.max_delay, POLICY.base_delay * 2 ** max(attempts - 1, 0))
    assert delay is not None
    assert 0.0 <= delay <= cap


@pytest.mark.parametrize(("attempts", "cap"), [
    (0, 0.5), (1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 16.0), (7, 20.0), (50, 20.0),
])
def test_cap_doubles_up_to_max_delay(attempts: int, cap: float) -> None:
    """The jitter cap doubles per counted attempt and stops at ``max_delay``."""
    policy = RetryPolicy(max_attempts=100, base_delay=0.5, max_delay=20.0, max_elapsed=1e9)
    assert policy.delay(attempts=attempts, elapsed=0.0, rand=0.999999) == pytest.approx(cap, rel=1e-5)


def test_zero_rand_gives_zero_delay() -> None:
    """Full jitter: the low end of the range is no wait at all."""
    assert POLICY.delay(attempts=3, elapsed=0.0, rand=0.0) == 0.0


@pytest.mark.parametrize(("attempts", "gives_up"), [(1, False), (5, False), (6, True), (7, True)])
def test_max_attempts(attempts: int, gives_up: bool) -> None:
    """After ``max_attempts`` counted tries the policy gives up (None)."""
    assert (POLICY.delay(attempts=attempts, elapsed=0.0, rand=0.5) is None) is gives_up


@pytest.mark.parametrize(("elapsed", "rand", "gives_up"), [
    (0.0, 0.5, False),
    (599.0, 0.0, False),
    (599.9, 0.5, True),   # 599.9 + 0.5 * 2.0 > 600
    (600.0, 0.0, False),  # exactly at the cap still fits
    (601.0, 0.0, True),
])
def test_max_elapsed(elapsed: float, rand: float, gives_up: bool) -> None:
    """A wait that would end past ``max_elapsed`` since the job's first try is refused."""
    assert (POLICY.delay(attempts=3, elapsed=elapsed, rand=rand) is None) is gives_up


@pytest.mark.parametrize(("rand", "retry_after", "expected"), [
    (0.0, 3.0, 3.0),      # longer than the jitter: the server's word wins
    (0.9, 0.1, 0.9),      # shorter than the jitter: jitter stands
    (0.5, 45.0, 45.0),    # above max_delay: still honoured
])
def test_retry_after_is_a_minimum(rand: float, retry_after: float, expected: float) -> None:
    """``x-acs-retry-after`` is honoured: the delay is never shorter than it."""
    policy = RetryPolicy(base_delay=1.0, max_delay=20.0)
    delay = policy.delay(attempts=1, elapsed=0.0, rand=rand, retry_after=retry_after)
    assert delay == pytest.approx(expected)


def test_retry_after_past_max_elapsed_gives_up() -> None:
    """A retry-after that would overrun the per-job time cap ends the job."""
    policy = RetryPolicy(max_elapsed=10.0)
    assert policy.delay(attempts=1, elapsed=5.0, rand=0.0, retry_after=6.0) is None


def test_throttled_not_limited_by_attempts() -> None:
    """Throttling does not use up attempts: past ``max_attempts`` a throttled try still waits."""
    assert POLICY.delay(attempts=99, elapsed=0.0, rand=0.5, throttled=True) is not None


def test_throttled_still_limited_by_elapsed() -> None:
    """Throttling is bounded by the per-job time cap."""
    assert POLICY.delay(attempts=0, elapsed=700.0, rand=0.5, throttled=True) is None


def test_huge_attempt_counts_do_not_overflow() -> None:
    """A very large attempt count stays at the capped delay (no float overflow)."""
    policy = RetryPolicy(max_attempts=10**6, max_elapsed=1e12)
    assert policy.delay(attempts=10**5, elapsed=0.0, rand=0.5) == pytest.approx(10.0)


def test_default_policy_is_bounded() -> None:
    """The defaults never retry forever: attempts and total time are both capped."""
    policy = RetryPolicy()
    assert policy.max_attempts < 100
    assert policy.max_elapsed < float("inf")


# --- RetryBudget ---------------------------------------------------------------------------------


def test_budget_minimum_available_before_any_attempt() -> None:
    """The floor of the budget is spendable even before any first attempt."""
    budget = RetryBudget(ratio=0.5, minimum=3)
    assert [budget.try_spend() for _ in range(4)] == [True, True, True, False]
    assert budget.spent == 3


def test_budget_grows_with_first_attempts() -> None:
    """Each first attempt adds ``ratio`` retries to the budget."""
    budget = RetryBudget(ratio=0.5, minimum=0)
    for _ in range(4):
        budget.record_first_attempt()
    assert [budget.try_spend() for _ in range(3)] == [True, True, False]


def test_budget_exhausted_stays_exhausted() -> None:
    """Once spent, further tries are refused and not counted."""
    budget = RetryBudget(ratio=0.0, minimum=1)
    assert budget.try_spend() is True
    assert budget.try_spend() is False
    assert budget.try_spend() is False
    assert budget.spent == 1
