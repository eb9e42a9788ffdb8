"""Test-wide fixtures: every test's credentials look-ups stay on loopback (tests/loopback.py);
a TLS simulator whose new connections are slow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.server import Simulator, serve_simulator
from tests.loopback import LEAKY_SOURCES, LOOPBACK_GUARD

HANDSHAKE_DELAY = 0.1
"""The ``slow_handshakes`` simulator's hold on each new connection's TLS handshake (a WAN's)."""


@pytest.fixture(autouse=True)
def _credentials_stay_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """No metadata service, STS on a dead loopback port, no source picked from the outer shell.

    A test that serves its own fakes overrides these with monkeypatch (or a subprocess env)."""
    for name in LEAKY_SOURCES:
        monkeypatch.delenv(name, raising=False)
    for name, value in LOOPBACK_GUARD.items():
        monkeypatch.setenv(name, value)


@pytest_asyncio.fixture
async def slow_handshakes(tmp_path: Path) -> AsyncIterator[Simulator]:
    """An HTTPS simulator holding each new connection's handshake ``HANDSHAKE_DELAY`` seconds."""
    config = SimulatorConfig(tls_dir=tmp_path / "tls", new_connection_delay=HANDSHAKE_DELAY)
    async with serve_simulator(config) as sim:
        yield sim
