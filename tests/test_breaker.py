"""The failure circuit breaker: stop a run that can only fail."""

from __future__ import annotations

import pytest

from pipeline.run.breaker import BreakerConfig, CircuitBreaker

CONFIG = BreakerConfig(warmup=20, max_failure_ratio=0.5, systemic_streak=5)


def feed(breaker: CircuitBreaker, events: list[str]) -> list[str | None]:
    """``ok`` records a success, anything else a failure with that code; returns each verdict."""
    verdicts: list[str | None] = []
    for event in events:
        if event == "ok":
            breaker.record_success()
            verdicts.append(breaker.tripped)
        else:
            verdicts.append(breaker.record_failure(event))
    return verdicts


@pytest.mark.parametrize("code", [
    "NoPermission", "SignatureDoesNotMatch", "Forbidden.RAM", "InvalidAccessKeyId.NotFound",
    "InvalidSecurityToken.Expired",
])
def test_systemic_streak_trips(code: str) -> None:
    """Five jobs in a row failing with the same systemic code trip the breaker on the fifth."""
    verdicts = feed(CircuitBreaker(CONFIG), [code] * 5)
    assert verdicts[:4] == [None] * 4
    assert verdicts[4] is not None
    assert code in verdicts[4]


def test_success_resets_streak() -> None:
    """A success in between breaks the streak."""
    breaker = CircuitBreaker(CONFIG)
    assert feed(breaker, ["NoPermission"] * 4 + ["ok"] + ["NoPermission"] * 4) == [None] * 9
    assert breaker.streak == 4


def test_non_systemic_failure_resets_streak() -> None:
    """A failure particular to one job (a bad parameter) breaks the systemic streak."""
    breaker = CircuitBreaker(CONFIG)
    feed(breaker, ["NoPermission"] * 4 + ["InvalidParameter"] + ["NoPermission"] * 4)
    assert breaker.tripped is None
    assert breaker.streak == 4


def test_different_systemic_code_restarts_streak() -> None:
    """The streak counts one code: a different systemic code starts a new streak."""
    breaker = CircuitBreaker(CONFIG)
    feed(breaker, ["NoPermission"] * 4 + ["Forbidden.RAM"])
    assert (breaker.streak, breaker.streak_code, breaker.tripped) == (1, "Forbidden.RAM", None)


def test_ratio_does_not_trip_before_warmup() -> None:
    """Before ``warmup`` jobs have finished, even all-failed does not trip on the ratio."""
    breaker = CircuitBreaker(CONFIG)
    assert feed(breaker, ["InvalidParameter"] * 19) == [None] * 19


def test_ratio_trips_after_warmup() -> None:
    """Past the warm-up, a permanent-failure share above the ratio trips the breaker."""
    breaker = CircuitBreaker(CONFIG)
    verdicts = feed(breaker, ["InvalidParameter"] * 20)
    assert verdicts[19] is not None
    assert "20 of 20" in verdicts[19]


@pytest.mark.parametrize(("failures", "successes", "trips"), [
    (10, 10, False),  # exactly the ratio: not over it
    (11, 9, True),
    (9, 11, False),
])
def test_ratio_boundary(failures: int, successes: int, trips: bool) -> None:
    """The ratio trips only when the failure share is strictly above it."""
    breaker = CircuitBreaker(CONFIG)
    feed(breaker, ["ok"] * successes + ["InvalidParameter"] * failures)
    assert (breaker.tripped is not None) is trips


def test_trip_reason_is_kept() -> None:
    """Once tripped, the first reason stays (later failures do not rewrite it)."""
    breaker = CircuitBreaker(CONFIG)
    first = feed(breaker, ["NoPermission"] * 5)[-1]
    assert feed(breaker, ["InvalidParameter"] * 30)[-1] == first


def test_defaults() -> None:
    """Default: warm-up 20, ratio 0.5, streak 5."""
    assert BreakerConfig() == CONFIG
