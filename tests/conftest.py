"""Test-wide fixtures: every test's credentials look-ups stay on loopback (tests/loopback.py)."""

from __future__ import annotations

import pytest

from tests.loopback import LEAKY_SOURCES, LOOPBACK_GUARD


@pytest.fixture(autouse=True)
def _credentials_stay_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """No metadata service, STS on a dead loopback port, no source picked from the outer shell.

    A test that serves its own fakes overrides these with monkeypatch (or a subprocess env)."""
    for name in LEAKY_SOURCES:
        monkeypatch.delenv(name, raising=False)
    for name, value in LOOPBACK_GUARD.items():
        monkeypatch.setenv(name, value)
