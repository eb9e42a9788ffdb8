"""The simulator's quota: never more than ``quota`` ImportImage accepted in any 1-second window."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from alibabacloud_tea_openapi.exceptions import ThrottlingException

from pipeline.simulator import SimulatorConfig, serve_simulator
from pipeline.simulator.quota import SlidingPeak, SlidingWindowLimiter, TokenBucket, make_limiter
from tests.simulator_fixtures import RUNTIME, VALID, call, error_code, sdk_client, sdk_import_request


def _max_in_window(times: list[float], window: float = 1.0) -> int:
    return max((sum(1 for u in times if t - window < u <= t) for t in times), default=0)


@pytest.mark.parametrize("seed", range(5))
def test_sliding_window_never_exceeds_quota_in_any_second(seed: int) -> None:
    """Whatever the arrival pattern, admitted requests in any (t-1, t] window stay <= quota."""
    rng = random.Random(seed)
    arrivals = sorted(rng.uniform(0, 5) for _ in range(300))
    limiter = SlidingWindowLimiter(7)
    admitted = [t for t in arrivals if limiter.try_acquire(t)]
    assert _max_in_window(admitted) <= 7
    assert len(admitted) >= 7 * 4  # and it is not stricter than it must be


def test_sliding_peak_matches_brute_force() -> None:
    """SlidingPeak reports the largest count in any (t-1, t] window."""
    rng = random.Random(3)
    times = sorted(rng.uniform(0, 3) for _ in range(200))
    peak = SlidingPeak()
    for t in times:
        peak.hit(t)
    assert peak.peak == _max_in_window(times)


def test_token_bucket_admits_burst_then_rate() -> None:
    """With an explicit burst the bucket admits ``burst`` at once, then ``quota`` per second."""
    bucket = TokenBucket(rate=2, burst=3)
    assert [bucket.try_acquire(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.try_acquire(0.5)
    assert not bucket.try_acquire(0.6)


def test_quota_zero_is_unlimited() -> None:
    """quota=0 admits everything."""
    limiter = make_limiter(0, None)
    assert all(limiter.try_acquire(0.0) for _ in range(10_000))


@pytest.mark.asyncio
async def test_concurrent_burst_is_throttled_to_quota() -> None:
    """40 concurrent ImportImage against quota 5: 5 accepted, 35 Throttling.User, 5 images."""
    async with serve_simulator(SimulatorConfig(quota=5, available_after=0)) as sim:
        async with httpx.AsyncClient(base_url=sim.url, limits=httpx.Limits(max_connections=40)) as client:
            answers = await asyncio.gather(*(
                call(client, sim.endpoint, params={**VALID, "ImageName": f"img-{i}"}) for i in range(40)))
        stats = sim.stats()
    codes = [error_code(a) if a.status_code != 200 else "ok" for a in answers]
    assert stats["import_accepted_peak_1s"] <= 5
    assert codes.count("ok") == len(sim.images()) == stats["import_accepted"]
    assert codes.count("Throttling.User") == stats["throttled"] == 40 - codes.count("ok")
    assert stats["import_arrivals_peak_1s"] >= codes.count("ok")
    throttled = next(a for a in answers if a.status_code != 200)
    assert throttled.status_code == 400
    assert throttled.json()["Message"] == "Request was denied due to user flow control."
    assert "x-acs-retry-after" not in throttled.headers


@pytest.mark.asyncio
async def test_retry_after_reaches_the_sdk() -> None:
    """With retry_after_ms the SDK raises ThrottlingException carrying that many milliseconds."""
    config = SimulatorConfig(quota=1, retry_after_ms=250, available_after=0)
    async with serve_simulator(config) as sim:
        client = sdk_client(sim.endpoint)
        await client.import_image_with_options_async(sdk_import_request("first"), RUNTIME)
        with pytest.raises(ThrottlingException) as caught:
            await client.import_image_with_options_async(sdk_import_request("second"), RUNTIME)
    assert caught.value.retry_after == 250
    assert caught.value.code == "Throttling.User"


@pytest.mark.asyncio
async def test_quota_applies_to_import_only() -> None:
    """Describe calls are neither counted against nor refused by the ImportImage quota."""
    async with serve_simulator(SimulatorConfig(quota=1, available_after=0)) as sim, \
            httpx.AsyncClient(base_url=sim.url) as client:
        assert (await call(client, sim.endpoint)).status_code == 200
        describes = [await call(client, sim.endpoint, "DescribeSelfImages", {}) for _ in range(5)]
    assert all(d.status_code == 200 for d in describes)
