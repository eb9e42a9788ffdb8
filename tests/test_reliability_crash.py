"""Crash: kill -9 a 1,000-job migration at 20 random moments (5% drop_after and 5% slow_after
faults), then finish it: every valid job imported exactly once by the simulator's own record, and
the journal readable after every kill. The long variant: ``.venv/bin/python tests/soak/soak_kill.py
--cycles 100``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.soak.kill_cycles import kill_cycles


@pytest.mark.long  # 18 s; the default run keeps test_run_e2e's kill -9 test
@pytest.mark.timeout(240)
def test_twenty_kill_9_cycles_then_a_final_run_import_each_job_exactly_once(tmp_path: Path) -> None:
    """After 20 kill -9s at random moments and one more run: exit 0, each of the 1,000 jobs exists
    exactly once in the simulator, nothing else does, and every kill left a readable journal."""
    verdict = kill_cycles(tmp_path, jobs=1000, cycles=20, seed=11, rate=300.0, max_delay=0.4)
    assert verdict.final_code == 0, verdict.final_stderr
    assert verdict.journal_errors == []
    assert verdict.missing == []
    assert verdict.duplicates == {}
    assert verdict.unexpected == []
    assert verdict.killed >= 10, verdict.describe()  # the kills landed in running processes
