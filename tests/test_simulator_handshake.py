"""``simulator --new-connection-delay``: each new connection's TLS handshake is held (issue #13)."""

from __future__ import annotations

import ssl
import time

import httpx
import pytest

from pipeline.errors import ConfigError
from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.server import Simulator
from tests.conftest import HANDSHAKE_DELAY
from tests.run_helpers import cli

DELAY = HANDSHAKE_DELAY


@pytest.mark.asyncio
async def test_the_handshake_is_held_for_every_new_connection(slow_handshakes: Simulator) -> None:
    """Each new connection's TLS handshake takes the delay; a reused one does not."""
    assert slow_handshakes.tls is not None
    ca = str(slow_handshakes.tls.ca_file)
    for _ in range(2):
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=ca)) as http:
            started = time.monotonic()
            await http.get(f"{slow_handshakes.url}/_sim/stats")
            assert time.monotonic() - started >= DELAY
            started = time.monotonic()
            await http.get(f"{slow_handshakes.url}/_sim/stats")
            assert time.monotonic() - started < DELAY


def test_the_delay_needs_tls() -> None:
    """``--new-connection-delay`` without ``--tls`` is a usage error naming both flags."""
    result = cli("simulator", "--new-connection-delay", "0.1")
    assert result.returncode == 2
    assert "--new-connection-delay needs --tls" in result.stderr


def test_the_delay_needs_tls_in_the_config() -> None:
    """The same rule holds for a simulator built in code."""
    with pytest.raises(ConfigError, match="needs TLS"):
        SimulatorConfig(new_connection_delay=0.1)
