"""Image lifecycle, inspection endpoints, reset, persistence and the thread-based server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from pipeline.simulator import SimulatorConfig, SimulatorState, SimulatorThread, serve_simulator
from tests.simulator_fixtures import RUNTIME, VALID, call, sdk_client, sdk_import_request


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def test_image_is_creating_then_available_on_an_injected_clock() -> None:
    """An image is Creating for available_after seconds, then Available."""
    clock = FakeClock()
    state = SimulatorState(SimulatorConfig(available_after=30), wall=clock)
    image = state.create_image(dict(VALID), "RID")
    assert image.status(clock()) == "Creating"
    clock.now += 29.9
    assert state.images_snapshot()[0]["Status"] == "Creating"
    clock.now += 0.1
    assert state.images_snapshot()[0]["Status"] == "Available"


def test_fail_fraction_ends_in_failure_states() -> None:
    """With fail_fraction=1 every image ends Pack_failed or Upload_failed."""
    clock = FakeClock()
    state = SimulatorState(SimulatorConfig(available_after=0, fail_fraction=1.0, seed=5), wall=clock)
    statuses = {state.create_image(dict(VALID), "RID").status(clock()) for _ in range(20)}
    assert statuses == {"Pack_failed", "Upload_failed"}


@pytest.mark.asyncio
async def test_lifecycle_over_the_sdk_reaches_available() -> None:
    """Polling DescribeSelfImages by ImageId sees Available once available_after has passed."""
    async with serve_simulator(SimulatorConfig(available_after=0.05)) as sim:
        client = sdk_client(sim.endpoint)
        image_id = (await client.import_image_with_options_async(sdk_import_request(), RUNTIME)).body.image_id
        from alibabacloud_ens20171110 import models

        seen: list[str] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            body = (await client.describe_self_images_with_options_async(
                models.DescribeSelfImagesRequest(image_id=image_id), RUNTIME)).body
            seen.append(body.images.image[0].status)
            if seen[-1] == "Available":
                break
    assert seen[-1] == "Available"
    assert set(seen) <= {"Creating", "Available"}


@pytest.mark.asyncio
async def test_inspection_endpoints_and_reset() -> None:
    """/_sim/images lists every parameter received, /_sim/stats the counters, /_sim/reset clears."""
    async with serve_simulator(SimulatorConfig(available_after=0)) as sim, \
            httpx.AsyncClient(base_url=sim.url) as client:
        await call(client, sim.endpoint)
        images = (await client.get("/_sim/images")).json()
        by_name = (await client.get("/_sim/images", params={"ImageName": "other"})).json()
        stats = (await client.get("/_sim/stats")).json()
        assert (await client.post("/_sim/reset")).json() == {"Reset": True}
        after = (await client.get("/_sim/stats")).json()
    assert images["TotalCount"] == 1
    assert images["Images"][0]["Params"] == dict(VALID)
    assert by_name["TotalCount"] == 0
    assert stats["requests"] == {"ImportImage": {"ok": 1}}
    assert stats["accepted_by_name"] == {"centos-7": 1}
    assert (after["images"], after["requests_total"]) == (0, 0)


@pytest.mark.asyncio
async def test_inspection_refuses_remote_clients() -> None:
    """/_sim endpoints answer loopback clients only."""
    from pipeline.simulator import SimulatorApp

    app = SimulatorApp(SimulatorState(SimulatorConfig()))
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://ens.test") as client:
        response = await client.get("/_sim/stats")
    assert response.status_code == 403


@pytest.mark.asyncio
async def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    """Images written to state_file are there again after a restart."""
    state_file = tmp_path / "sim" / "state.json"
    config = SimulatorConfig(state_file=state_file, available_after=0, persist_interval=0.01)
    async with serve_simulator(config) as sim, httpx.AsyncClient(base_url=sim.url) as client:
        for name in ("one", "two"):
            await call(client, sim.endpoint, params={**VALID, "ImageName": name})
        first = sim.images()
    assert json.loads(state_file.read_text("utf-8"))["version"] == 1
    assert [p.name for p in state_file.parent.iterdir()] == ["state.json"]
    async with serve_simulator(config) as sim:
        assert sim.images() == first


def test_simulator_thread_serves_the_sync_client() -> None:
    """SimulatorThread runs in its own loop; stats() and images() are consistent snapshots."""
    with SimulatorThread(SimulatorConfig(available_after=0)) as sim:
        client = sdk_client(sim.endpoint)
        for i in range(3):
            client.import_image_with_options(sdk_import_request(f"t-{i}"), RUNTIME)
        stats = sim.stats()
        assert [i["ImageName"] for i in sim.images()] == ["t-0", "t-1", "t-2"]
        sim.reset()
        assert sim.images() == []
    assert stats["import_accepted"] == 3
    assert stats["in_flight"] == 0


def test_simulator_thread_reports_a_startup_failure() -> None:
    """A port that cannot be bound fails start() with the OS error, not a hang."""
    with SimulatorThread(SimulatorConfig()) as running:
        second = SimulatorThread(SimulatorConfig(port=running.simulator.port))
        with pytest.raises(OSError, match="in use"):
            second.start()


def test_listening_socket_disables_nagle() -> None:
    """The listening socket says TCP and sets TCP_NODELAY, so answers never wait for a delayed ACK."""
    import socket

    from pipeline.simulator.server import _bind

    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        sock.close()
