"""Injected faults are observable from the client side and in the simulator's counters."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

from pipeline.simulator import ConnectionDropped, SimulatorConfig, serve_simulator
from pipeline.simulator.faults import FaultPlan
from tests.simulator_fixtures import call, error_code, in_process


def only(fault: str, **extra: float) -> SimulatorConfig:
    """A simulator where every ImportImage meets ``fault``."""
    return SimulatorConfig(faults={fault: 1.0}, available_after=0, seed=7, **extra)  # type: ignore[arg-type]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [("error500", 500, "InternalError"), ("error503", 503, "ServiceUnavailable")],
)
async def test_server_errors_create_nothing(fault: str, status: int, code: str) -> None:
    """error500/error503 answer an ENS error body and create no image."""
    async with serve_simulator(only(fault)) as sim, httpx.AsyncClient(base_url=sim.url) as client:
        response = await call(client, sim.endpoint)
        stats = sim.stats()
    assert (response.status_code, error_code(response)) == (status, code)
    assert stats["images"] == 0
    assert stats["faults"] == {fault: 1}
    assert stats["requests"]["ImportImage"] == {code: 1}


@pytest.mark.asyncio
async def test_garbage_is_an_html_502() -> None:
    """garbage answers HTTP 502 with an HTML page (a proxy's), and creates nothing."""
    async with serve_simulator(only("garbage")) as sim, httpx.AsyncClient(base_url=sim.url) as client:
        response = await call(client, sim.endpoint)
        stats = sim.stats()
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<html>")
    assert (stats["images"], stats["faults"]) == (0, {"garbage": 1})


@pytest.mark.asyncio
@pytest.mark.parametrize(("fault", "created"), [("drop_before", 0), ("drop_after", 1)])
async def test_dropped_connections(fault: str, created: int) -> None:
    """drop_before/drop_after close the socket with no answer; only drop_after created the image."""
    async with serve_simulator(only(fault)) as sim, httpx.AsyncClient(base_url=sim.url) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await call(client, sim.endpoint)
        describe = await call(client, sim.endpoint, "DescribeSelfImages", {})
        stats = sim.stats()
    assert describe.json()["TotalCount"] == str(created)
    assert stats["faults"] == {fault: 1}
    assert stats["requests"]["ImportImage"] == {"dropped": 1}
    assert stats["in_flight"] == 0


@pytest.mark.asyncio
async def test_drop_in_process_raises_connection_dropped() -> None:
    """Through httpx.ASGITransport a drop raises ConnectionDropped, an httpx.RemoteProtocolError."""
    client, state = in_process(only("drop_after"))
    async with client:
        with pytest.raises(ConnectionDropped):
            await call(client, "ens.test")
    assert issubclass(ConnectionDropped, httpx.RemoteProtocolError)
    assert len(state.images) == 1


@pytest.mark.asyncio
async def test_slow_after_creates_then_answers_late() -> None:
    """slow_after creates the image at once but answers only after slow_seconds: clients time out."""
    config = only("slow_after", slow_seconds=2.0)
    async with serve_simulator(config) as sim, httpx.AsyncClient(base_url=sim.url, timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            await call(client, sim.endpoint)
        # On a loaded machine the server may reach the request only after the client gave up.
        with anyio.fail_after(2.0):
            while not sim.images():
                await anyio.sleep(0.01)
        assert len(sim.images()) == 1
        assert sim.stats()["faults"] == {"slow_after": 1}


@pytest.mark.asyncio
async def test_latency_delays_import() -> None:
    """A latency range makes every ImportImage take at least its minimum."""
    config = SimulatorConfig(latency=(0.05, 0.06), available_after=0)
    async with serve_simulator(config) as sim, httpx.AsyncClient(base_url=sim.url) as client:
        started = time.perf_counter()
        response = await call(client, sim.endpoint)
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert elapsed >= 0.05


@pytest.mark.asyncio
async def test_deny_all_is_no_permission() -> None:
    """deny_all answers NoPermission (HTTP 400) to ImportImage and creates nothing."""
    client, state = in_process(SimulatorConfig(deny_all=True))
    async with client:
        response = await call(client, "ens.test")
    assert (response.status_code, error_code(response)) == (400, "NoPermission")
    assert len(state.images) == 0


@pytest.mark.asyncio
async def test_faults_never_touch_describe() -> None:
    """With every ImportImage failing, DescribeSelfImages and DescribeImages still answer."""
    client, _ = in_process(only("error500"))
    async with client:
        answers = [await call(client, "ens.test", action, {})
                   for action in ("DescribeSelfImages", "DescribeImages")]
    assert [a.status_code for a in answers] == [200, 200]


def test_same_seed_same_faults() -> None:
    """Two plans with one seed draw the same faults, latencies and outcomes."""
    config = SimulatorConfig(faults={"error500": 0.3, "drop_after": 0.2}, latency=(0, 1), fail_fraction=0.5)

    def run(seed: int) -> list[object]:
        plan = FaultPlan(config, seed)
        return [(plan.draw(), plan.latency(), plan.final_status()) for _ in range(50)]

    assert run(11) == run(11)
    assert run(11) != run(12)
    draws = [d[0] for d in run(11)]
    assert {"error500", "drop_after", None} == set(draws)


class FakeTransport:
    """Records the abort a drop performs."""

    def __init__(self) -> None:
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


@pytest.mark.asyncio
async def test_drop_falls_back_to_the_server_connection_finder() -> None:
    """When ``send`` was wrapped (no transport behind it) the server's finder supplies the transport."""
    from pipeline.simulator.faults import drop_connection

    transport = FakeTransport()

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        raise AssertionError("a drop sends nothing")

    await drop_connection({"client": ("127.0.0.1", 1)}, receive, send, lambda scope: transport)
    assert transport.aborted
