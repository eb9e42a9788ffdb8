"""Soak: kill -9 a migration at N random moments against a backend with real latency (0.05-4 s
service time, 5% late_create, 5% drop_after faults), each rerun started at once after the kill,
then finish it, and print a verdict: every job imported exactly once, the journal always readable.

    .venv/bin/python tests/soak/soak_kill.py --cycles 100

The runs use a reconcile horizon (8 s by default) above the backend's slowest creation
(latency + late_seconds = 7 s): that is the condition under which exactly once is promised.

Not collected by pytest (no test_ prefix; tests/soak is outside the default run's file pattern).
Exit 0 when clean, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.soak.kill_cycles import kill_cycles


def main() -> int:
    """Parse the options, run the cycles, print the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=5000,
                        help="job list size (5,000: at 100/s the kills land mid-run throughout)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--rate", type=float, default=100.0, help="--rate of each run")
    parser.add_argument("--max-delay", type=float, default=1.0,
                        help="kill within this many seconds after the run starts")
    parser.add_argument("--latency", default="0.05-4", help="the simulator's service time, MIN-MAX s")
    parser.add_argument("--late", type=float, default=0.05, help="late_create probability")
    parser.add_argument("--late-seconds", type=float, default=3.0)
    parser.add_argument("--drop-after", type=float, default=0.05, help="drop_after probability")
    parser.add_argument("--timeout", type=float, default=2.0, help="--timeout of each run")
    parser.add_argument("--horizon", type=float, default=8.0, help="reconcile_horizon of each run")
    options = parser.parse_args()
    faults = ("--latency", options.latency, "--fault", f"late_create={options.late}",
              "--late-seconds", str(options.late_seconds), "--fault", f"drop_after={options.drop_after}")
    env = {"ENS_MIGRATE_RECONCILE_DELAY": "0.05", "ENS_MIGRATE_LOOKUP_RATE": "200",
           "ENS_MIGRATE_RECONCILE_HORIZON": str(options.horizon)}
    with tempfile.TemporaryDirectory(prefix="soak-kill-") as tmp:
        verdict = kill_cycles(
            Path(tmp), jobs=options.jobs, cycles=options.cycles, seed=options.seed, rate=options.rate,
            max_delay=options.max_delay, faults=faults, timeout=options.timeout, env=env,
            on_cycle=lambda n, what: print(f"cycle {n}/{options.cycles}: {what}", file=sys.stderr)
            if n % 10 == 0 else None)
    if not verdict.clean:
        print(verdict.final_stderr[-2000:], file=sys.stderr)
        for error in verdict.journal_errors[:10]:
            print(error, file=sys.stderr)
        print(f"missing: {verdict.missing[:10]} duplicated: {dict(list(verdict.duplicates.items())[:10])}",
              file=sys.stderr)
    print(verdict.describe())
    return 0 if verdict.clean else 1


if __name__ == "__main__":
    sys.exit(main())
