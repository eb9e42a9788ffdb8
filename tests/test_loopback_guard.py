"""The loopback guard (tests/conftest.py, tests/loopback.py) is in force for tests and CLI runs."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from tests.loopback import LOOPBACK_GUARD
from tests.run_helpers import cli_env


def _loopback(url: str) -> bool:
    return urlsplit(url).hostname in {"127.0.0.1", "localhost", "::1"}


def test_guard_in_the_test_process() -> None:
    """Every test sees the metadata source off and STS/metadata URLs on loopback."""
    assert os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] == "true"
    assert _loopback(os.environ["ALIBABA_CLOUD_STS_ENDPOINT"])
    assert _loopback(os.environ["ENS_MIGRATE_ECS_METADATA_ENDPOINT"])
    assert "ALIBABA_CLOUD_CREDENTIALS_URI" not in os.environ


def test_guard_in_cli_subprocesses() -> None:
    """cli_env drops the outer ALIBABA_CLOUD_* variables and puts the guard back."""
    env = cli_env()
    for name, value in LOOPBACK_GUARD.items():
        assert env[name] == value
