"""kill -9 a run over and over at random moments, then finish it: the shared core of the crash test
(tests/test_reliability_crash.py) and the soak (tests/soak/soak_kill.py).

The simulator's own record is the truth: every valid job must exist exactly once, nothing else, and
the journal must stay readable after every kill (a torn last line is allowed, nothing else).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import JournalError
from pipeline.journal.reader import iter_records
from tests.run_helpers import SimProcess, cli, cli_popen, imported_counts, write_jobs

FAST = {"ENS_MIGRATE_RECONCILE_DELAY": "0.05", "ENS_MIGRATE_RECONCILE_HORIZON": "1",
        "ENS_MIGRATE_LOOKUP_RATE": "200"}
FAULTS = ("--fault", "drop_after=0.05", "--fault", "slow_after=0.05", "--slow-seconds", "0.5",
          "--latency", "0.0-0.01")


@dataclass(slots=True)
class Verdict:
    """What the cycles and the final run left behind."""

    jobs: int
    cycles: int
    killed: int = 0
    """Cycles that ended by our SIGKILL (the others had finished the list already)."""
    early_exits: dict[int, int] = field(default_factory=dict)
    """Exit code -> cycles whose run ended on its own before the kill."""
    journal_errors: list[str] = field(default_factory=list)
    final_code: int | None = None
    final_stderr: str = ""
    missing: list[str] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    import_requests: int = 0
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        """Exactly once, journal always readable, final run exit 0."""
        return (self.final_code == 0 and not self.missing and not self.duplicates and not self.unexpected
                and not self.journal_errors)

    def describe(self) -> str:
        """One paragraph for people."""
        state = "CLEAN" if self.clean else "FAILED"
        return (f"{state}: {self.jobs} jobs, {self.cycles} cycles ({self.killed} killed mid-run, early "
                f"exits {self.early_exits or 'none'}); final run exit {self.final_code}; missing "
                f"{len(self.missing)}, duplicated {len(self.duplicates)}, unexpected {len(self.unexpected)}, "
                f"journal errors {len(self.journal_errors)}; {self.import_requests} ImportImage requests; "
                f"{self.seconds:.1f}s")


def _starts(journal: Path) -> int:
    if not journal.exists():
        return 0
    return journal.read_bytes().count(b'"event":"run.start"')


def kill_cycles(workdir: Path, *, jobs: int = 1000, cycles: int = 20, seed: int = 11, rate: float = 100.0,
                max_delay: float = 1.0, on_cycle: Callable[[int, str], None] | None = None,
                faults: tuple[str, ...] = FAULTS, timeout: float = 0.3,
                env: dict[str, str] | None = None) -> Verdict:
    """Run ``cycles`` kill -9 cycles over a ``jobs``-job list, each rerun started at once after the
    kill, then a final run; judge the result. ``faults`` are the simulator's arguments (latency,
    faults), ``env`` the runs' settings (by default a fast lookup and a 1 s horizon)."""
    run_env = env if env is not None else FAST
    started = time.monotonic()
    rng = random.Random(seed)
    job_list, journal = workdir / "jobs.csv", workdir / "j.jsonl"
    valid, _ = write_jobs(job_list, jobs, seed=seed)
    verdict = Verdict(jobs=jobs, cycles=cycles)
    run_args = ("run", str(job_list), "--endpoint", "", "--journal", str(journal), "--rate", str(rate),
                "--timeout", str(timeout), "--concurrency", "32", "--quiet")
    with SimProcess(*faults, "--seed", str(seed)) as sim:
        args = [a if a != "" else sim.url for a in run_args]
        for number in range(1, cycles + 1):
            before = _starts(journal)
            proc = cli_popen(*args, env=run_env)
            deadline = time.monotonic() + 30
            while _starts(journal) == before and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, max_delay))  # the random kill moment
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                verdict.killed += 1
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
            if proc.returncode != -signal.SIGKILL:
                verdict.early_exits[proc.returncode] = verdict.early_exits.get(proc.returncode, 0) + 1
            try:
                for _ in iter_records(journal):
                    pass
            except JournalError as exc:
                verdict.journal_errors.append(f"cycle {number}: {exc}")
            if on_cycle is not None:
                on_cycle(number, f"exit {proc.returncode}")
        final = cli(*args, env=run_env, timeout=900)
        verdict.final_code, verdict.final_stderr = final.returncode, final.stderr
        counts = imported_counts(sim.images())
        stats = sim.stats()
    verdict.missing = [n for n in valid if counts.get(n, 0) == 0]
    verdict.duplicates = {**stats["duplicate_names"], **{n: c for n, c in counts.items() if c > 1}}
    verdict.unexpected = sorted(set(counts) - set(valid))
    verdict.import_requests = sum(stats["requests"].get("ImportImage", {}).values())
    verdict.seconds = time.monotonic() - started
    return verdict
