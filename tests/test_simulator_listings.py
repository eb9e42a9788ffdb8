"""The simulator's listing and deletion knobs (issue #12): a Describe quota, Describe faults, a
maximum page size, DeleteImage faults, images made behind the tool's back, the Describe peak."""

from __future__ import annotations

import anyio
import httpx
import pytest

from pipeline.errors import ConfigError
from pipeline.simulator import SimulatorConfig
from tests.simulator_fixtures import VALID, call, error_code, in_process

HOST = "ens.test"


async def _import(client: httpx.AsyncClient, names: list[str]) -> None:
    for name in names:
        response = await call(client, HOST, "ImportImage", {**VALID, "ImageName": name})
        assert response.status_code == 200


@pytest.mark.asyncio
async def test_a_page_holds_at_most_max_page_size_and_says_so() -> None:
    """Asked for 50 with max_page_size 10: 10 images, PageSize 10; page 2 starts at the 11th."""
    client, _ = in_process(SimulatorConfig(available_after=0, max_page_size=10))
    async with client:
        await _import(client, [f"web-{i:02d}" for i in range(25)])
        first = (await call(client, HOST, "DescribeSelfImages", {"PageSize": "50"})).json()
        second = (await call(client, HOST, "DescribeSelfImages",
                             {"PageSize": "50", "PageNumber": "2"})).json()
    assert (len(first["Images"]["Image"]), int(first["PageSize"]), int(first["TotalCount"])) == (10, 10, 25)
    assert second["Images"]["Image"][0]["ImageName"] == "web-14"


@pytest.mark.asyncio
async def test_the_describe_quota_throttles_each_describe_action_and_counts_the_peak() -> None:
    """describe_quota 3: the 4th DescribeSelfImages in a second is Throttling.User; DescribeImages
    has a window of its own; ImportImage is not limited by it; the peak counts both."""
    client, state = in_process(SimulatorConfig(available_after=0, describe_quota=3))
    async with client:
        own = [await call(client, HOST, "DescribeSelfImages", {}) for _ in range(4)]
        public = await call(client, HOST, "DescribeImages", {})
        await _import(client, ["img-a", "img-b", "img-c", "img-d"])
    assert [r.status_code for r in own] == [200, 200, 200, 400]
    assert error_code(own[3]) == "Throttling.User"
    assert public.status_code == 200
    stats = state.stats_snapshot()
    assert (stats["describe_throttled"], stats["describe_arrivals_peak_1s"]) == (1, 5)


@pytest.mark.asyncio
async def test_describe_faults_are_seeded() -> None:
    """describe fault error503=1: every Describe call answers ServiceUnavailable."""
    client, state = in_process(SimulatorConfig(describe_faults={"error503": 1.0}, seed=3))
    async with client:
        response = await call(client, HOST, "DescribeSelfImages", {})
    assert (response.status_code, error_code(response)) == (503, "ServiceUnavailable")
    assert state.stats_snapshot()["faults"] == {"describe_error503": 1}


@pytest.mark.asyncio
async def test_a_slow_describe_is_held_then_served() -> None:
    """describe fault slow=1: the call is held while the server counts it in flight, then served."""
    client, state = in_process(SimulatorConfig(describe_faults={"slow": 1.0}, slow_seconds=30, seed=3))
    async with client, anyio.create_task_group() as tg:
        answers: list[httpx.Response] = []

        async def describe() -> None:
            answers.append(await call(client, HOST, "DescribeSelfImages", {}))

        tg.start_soon(describe)
        with anyio.fail_after(10):
            while state.stats_snapshot()["in_flight"] == 0:
                await anyio.sleep(0.01)
        assert not answers  # held
        tg.cancel_scope.cancel()
    fast, _ = in_process(SimulatorConfig(describe_faults={"slow": 1.0}, slow_seconds=0, seed=3))
    async with fast:
        response = await call(fast, HOST, "DescribeSelfImages", {})
    assert response.status_code == 200
    assert state.stats_snapshot()["faults"] == {"describe_slow": 1}


@pytest.mark.asyncio
async def test_post_sim_images_creates_an_image_outside_the_import_counts() -> None:
    """POST /_sim/images?ImageName=x: an image the listing shows, not counted as an ImportImage."""
    client, state = in_process(SimulatorConfig(available_after=0))
    async with client:
        made = await client.post("/_sim/images", params={"ImageName": "stray"})
        refused = await client.post("/_sim/images")
        listed = (await call(client, HOST, "DescribeSelfImages", {"ImageName": "stray"})).json()
    assert made.status_code == 200
    assert refused.status_code == 400
    assert [i["ImageId"] for i in listed["Images"]["Image"]] == [made.json()["ImageId"]]
    assert state.stats_snapshot()["import_accepted"] == 0


@pytest.mark.parametrize("config", [
    {"describe_faults": {"drop_after": 0.1}}, {"delete_faults": {"throttle": 0.1}},
    {"describe_faults": {"error500": 0.7, "error503": 0.7}}, {"max_page_size": 0},
    {"max_page_size": 51}, {"describe_quota": -1},
])
def test_bad_listing_knobs_are_refused(config: dict[str, object]) -> None:
    """Unknown fault names, probabilities over 1, page sizes outside 1..50, a negative quota."""
    with pytest.raises(ConfigError):
        SimulatorConfig(**config)  # type: ignore[arg-type]
