"""Issue #5's acceptance scenario, end to end, printing its figures.

2,000 jobs (10% invalid) against the simulator with quota 50/s, latency 20-200 ms and 2% of each
fault kind (slow answers longer than --timeout); then at most one rerun with --retry-failed.
With ``--kills 5`` the first pass is killed with SIGKILL at five random moments before finishing.

    .venv/bin/python tests/scenarios/acceptance_migration.py [--jobs 2000] [--kills 0] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.run_helpers import (
    SimProcess,
    cli,
    cli_popen,
    imported_counts,
    journal_records,
    wait_for_line,
    write_jobs,
)

FAULTS = ("error500", "error503", "drop_before", "drop_after", "slow_after", "garbage")


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="ens-acceptance-"))
    jobs, journal = work / "jobs.csv", work / "run.journal.jsonl"
    valid, invalid = write_jobs(jobs, args.jobs, invalid_every=10, seed=args.seed)
    faults = [a for f in FAULTS for a in ("--fault", f"{f}=0.02")]
    run_args = ["run", str(jobs), "--journal", str(journal), "--rate", "50", "--timeout", "2", "--quiet"]
    with SimProcess("--quota", "50", "--latency", "0.02-0.2", "--slow-seconds", "4", "--seed",
                    str(args.seed), *faults) as sim:
        run_args[2:2] = ["--endpoint", sim.url]
        for kill in range(args.kills):
            proc = cli_popen(*run_args)
            wait_for_line(journal, '"event":"run.start"', time.monotonic() + 30)
            time.sleep(rng.uniform(0.5, 6.0))  # a random moment to kill at
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            records = journal_records(journal)  # raises if a complete line does not parse
            print(f"kill {kill + 1}: journal intact ({len(records)} records)")
        passes = [cli(*run_args, timeout=600)]
        if passes[-1].returncode != 0:
            passes.append(cli(*run_args, "--retry-failed", timeout=600))
        stats = sim.stats()
        counts = imported_counts(sim.images())
    records = journal_records(journal)
    first_run = records[: next(i for i, r in enumerate(records) if r["event"] == "run.end") + 1]
    attempts = [r for r in first_run if r["event"] == "job.attempt"]
    outcomes = [r for r in first_run if r["event"] in ("job.imported", "job.error", "job.failed")]
    span = _ts(outcomes[-1]["ts"]) - _ts(attempts[0]["ts"]) if attempts and outcomes else 0.0
    sending = _ts(attempts[-1]["ts"]) - _ts(attempts[0]["ts"]) if len(attempts) > 1 else 0.0
    end = next(r for r in first_run if r["event"] == "run.end")
    requests = end["stats"]["requests"]
    exactly_once = all(counts.get(n) == 1 for n in valid)
    no_invalid = not any(n in counts for n in invalid)
    print(f"work dir {work}")
    print(f"exit codes: {[p.returncode for p in passes]} (1 means the invalid rows are reported as failed)")
    print(f"valid jobs {len(valid)}, imported exactly once: {exactly_once}; "
          f"duplicates: {stats['duplicate_names']}; invalid sent: {not no_invalid}")
    print(f"faults injected: {stats['faults']}; throttled answers: {stats['throttled']}")
    if args.kills == 0:
        rate, overall = (requests / sending if sending else 0.0), (requests / span if span else 0.0)
        print(f"first pass: {requests} ImportImage requests; while sending ({sending:.1f}s) "
              f"{rate:.2f}/s = {rate / 50:.1%} of the 50/s quota; first request to last answer "
              f"({span:.1f}s, incl. waiting out slow answers) {overall:.2f}/s = {overall / 50:.1%}")
    print(f"peak second at the simulator: {stats['import_arrivals_peak_1s']} (quota 50)")
    ok = exactly_once and no_invalid and stats["import_arrivals_peak_1s"] <= 50
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
