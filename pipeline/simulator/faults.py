"""Seeded fault injection for ImportImage, and dropping a connection without an answer."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import httpx

from pipeline.simulator.config import FAULTS, SimulatorConfig

BEFORE = frozenset({"error500", "error503", "drop_before", "garbage"})
"""Faults that strike before the image is created: nothing is created."""
AFTER = frozenset({"drop_after", "slow_after", "nonce_replay"})
"""Faults that strike after the image is created."""
LATE = frozenset({"late_create", "late_503"})
"""Faults whose image is created ``late_seconds`` after arrival, whatever the client does."""

GARBAGE_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>Tengine</center>\r\n</body>\r\n</html>\r\n"
)
"""What a proxy in front of the API answers when the backend is gone."""


class ConnectionDropped(httpx.RemoteProtocolError):
    """Raised in-process (``httpx.ASGITransport``) where the simulator cannot close a socket.

    It is the exception httpx raises over a real socket when the server closes without answering.
    """

    def __init__(self) -> None:
        super().__init__("Server disconnected without sending a response.")


class FaultPlan:
    """One seeded RNG for faults, latency and image failures; one fault draw per ImportImage."""

    def __init__(self, config: SimulatorConfig, seed: int) -> None:
        self._rng = random.Random(seed)
        self._cumulative = _cumulative(config.faults, FAULTS)
        self._latency = config.latency
        self._fail_fraction = config.fail_fraction
        self._left = config.fault_limit

    def draw(self) -> str | None:
        """The fault for the next ImportImage, or None."""
        if not self._cumulative or self._left == 0:
            return None
        x = self._rng.random()
        for bound, name in self._cumulative:
            if x < bound:
                if self._left is not None:
                    self._left -= 1
                return name
        return None

    def latency(self) -> float:
        """Seconds of service time for the next ImportImage."""
        low, high = self._latency
        return low if high <= low else self._rng.uniform(low, high)

    def final_status(self) -> str:
        """Where a new image's import ends: ``Available`` or one of the failure states."""
        if self._fail_fraction and self._rng.random() < self._fail_fraction:
            return self._rng.choice(("Pack_failed", "Upload_failed"))
        return "Available"


class ActionFaults:
    """Seeded faults of one other action (Describe*, DeleteImage), with an RNG of its own so they
    do not change ImportImage's draws for a seed."""

    def __init__(self, faults: Mapping[str, float], seed: int, order: tuple[str, ...]) -> None:
        self._rng = random.Random(seed)
        self._cumulative = _cumulative(faults, order)

    def draw(self) -> str | None:
        """The fault for the next call, or None."""
        return _pick(self._rng, self._cumulative)


def _cumulative(faults: Mapping[str, float], order: tuple[str, ...]) -> list[tuple[float, str]]:
    """(upper bound, name) of each configured fault, in ``order``, for one draw in [0, 1)."""
    table: list[tuple[float, str]] = []
    total = 0.0
    for name in order:
        p = faults.get(name, 0.0)
        if p > 0:
            total += p
            table.append((total, name))
    return table


def _pick(rng: random.Random, table: list[tuple[float, str]]) -> str | None:
    if not table:
        return None  # no draw: a seed's other random numbers stay where they were
    x = rng.random()
    for bound, name in table:
        if x < bound:
            return name
    return None


ConnectionFinder = Callable[[dict[str, Any]], Any]
"""Given an ASGI scope, the server's transport for that connection (or None)."""


async def drop_connection(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[..., Awaitable[None]],
    finder: ConnectionFinder | None = None,
) -> None:
    """Close the client's connection without an answer, or raise ``ConnectionDropped`` in-process.

    ASGI has no "abort" message. Under uvicorn (h11 and httptools alike) ``send`` is a bound
    method of the request cycle, which holds the asyncio transport; aborting it and waiting for
    the resulting ``http.disconnect`` makes uvicorn finish the cycle silently. ``finder`` is the
    fallback when a middleware wrapped ``send``.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None and finder is not None:
        transport = finder(scope)
    if transport is None or not hasattr(transport, "abort"):
        raise ConnectionDropped
    transport.abort()
    with anyio.move_on_after(5):
        while (await receive())["type"] != "http.disconnect":
            pass
