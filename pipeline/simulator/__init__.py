"""The built-in ENS simulator: a strict fake ENS endpoint for rehearsals and tests."""

from __future__ import annotations

from pipeline.simulator.app import SimulatorApp
from pipeline.simulator.config import (
    DEV_ACCESS_KEY_ID,
    DEV_ACCESS_KEY_SECRET,
    FAULTS,
    KeyPair,
    SimulatorConfig,
    key_pair_from_env,
)
from pipeline.simulator.faults import ConnectionDropped
from pipeline.simulator.server import Simulator, SimulatorThread, serve_simulator
from pipeline.simulator.state import SimulatorState

__all__ = [
    "DEV_ACCESS_KEY_ID",
    "DEV_ACCESS_KEY_SECRET",
    "FAULTS",
    "ConnectionDropped",
    "KeyPair",
    "Simulator",
    "SimulatorApp",
    "SimulatorConfig",
    "SimulatorState",
    "SimulatorThread",
    "key_pair_from_env",
    "serve_simulator",
]
