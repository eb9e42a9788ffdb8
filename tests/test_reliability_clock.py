"""Clock skew: a local clock 20 minutes off makes ENS refuse every signature (InvalidTimeStamp.Expired);
the run says so, names the local clock, and stops at once (exit 4) instead of retrying."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline.cli.run import PROBE_CONNECTIONS
from tests.run_helpers import SimProcess, cli, write_jobs


@pytest.mark.parametrize("offset", ["1200", "-1200"])
def test_a_skewed_clock_stops_the_run_at_once_naming_the_local_clock(tmp_path: Path, offset: str) -> None:
    """Simulator clock 20 minutes ahead or behind: exit 4 within seconds, the message names
    InvalidTimeStamp.Expired and the local clock, and no ImportImage is sent (the preflight probe
    calls are the only requests)."""
    write_jobs(tmp_path / "jobs.csv", 50)
    with SimProcess("--clock-offset", offset) as sim:
        started = time.monotonic()
        result = cli("run", str(tmp_path / "jobs.csv"), "--endpoint", sim.url, "--journal",
                     str(tmp_path / "j.jsonl"), "--quiet", timeout=30)
        elapsed = time.monotonic() - started
        stats = sim.stats()
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr
    assert "InvalidTimeStamp.Expired" in result.stderr
    assert "local clock is off" in result.stderr
    assert elapsed < 10
    assert stats["requests_total"] <= PROBE_CONNECTIONS
    assert "ImportImage" not in stats["requests"]
