"""Benchmark holding an ImportImage quota: ens-migrate at --rate = quota, the bare SDK beside it.

Run: .venv/bin/python tests/bench/bench_quota.py [--jobs 3000] [--quota 100] [--latency 0.05-0.3]
Each side imports the same list into a fresh simulator (own process) with --quota and --latency.
Ours runs with --rate equal to the quota. The achieved rate is (accepted - 1) / (seconds between
the first and the last ImportImage arrival), the arrivals watched by polling /_sim/stats every
0.1 s (so the span is known to about +-0.1 s); the rate over the whole run's wall time (process
start-up and shut-down included) is shown too. The baseline (baseline_sdk.py, no rate limiting,
concurrency 32) sends every throttled job again after 0.5 s until all are accepted.
Goals (exit 1 when missed): ours achieves >= 97% of the quota, the simulator's busiest 1-second
window holds <= quota arrivals, and nothing is throttled.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from arrivals import ArrivalWatch
from harness import (
    Child,
    SimProcess,
    baseline,
    baseline_result,
    check,
    import_requests,
    machine,
    ours,
    run_child,
    write_jobs,
)


def side(name: str, jobs: Path, tmp: Path,
         args: argparse.Namespace) -> tuple[Child, dict[str, Any], float | None]:
    """One side against a fresh simulator: (the child, the simulator's stats, the arrival span)."""
    with SimProcess("--quota", str(args.quota), "--latency", args.latency, "--seed", "1") as sim:
        with ArrivalWatch(sim.url) as watch:
            if name == "sdk":
                port = sim.url.rsplit(":", 1)[1]
                child = run_child(baseline(str(jobs), "--endpoint", f"127.0.0.1:{port}",
                                           "--concurrency", str(args.concurrency), "--retry-throttled"))
                baseline_result(child)
            else:
                child = run_child(ours("run", str(jobs), "--endpoint", sim.url, "--quiet",
                                       "--journal", str(tmp / "ours.jsonl"), "--rate", str(args.quota),
                                       "--concurrency", str(args.concurrency)))
                check(child, "ens-migrate run")
        stats = sim.stats()
    if stats["import_accepted"] != args.jobs or stats["duplicate_names"]:
        sys.exit(f"{name}: simulator accepted {stats['import_accepted']} of {args.jobs}")
    return child, stats, watch.span()


def main() -> int:
    """Run both sides, print the table, check the goals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--quota", type=int, default=100)
    parser.add_argument("--latency", default="0.05-0.3")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        jobs = write_jobs(tmp / "jobs.csv", args.jobs)
        results = {name: side(name, jobs, tmp, args) for name in ("ours", "sdk")}
    quota, n = args.quota, args.jobs
    print(f"quota: {n} jobs, simulator --quota {quota} --latency {args.latency}, "
          f"concurrency {args.concurrency}; {machine()}")
    print(f"{'side':34}{'wall s':>8}{'span s':>8}{'rate/s':>8}{'% quota':>9}{'wall rate':>10}"
          f"{'peak 1s':>9}{'requests':>10}{'throttled':>10}")
    labels = {"ours": f"ens-migrate run --rate {quota}", "sdk": "official SDK, no limiter"}
    achieved: dict[str, float] = {}
    for name, (child, stats, span) in results.items():
        rate = (n - 1) / span if span else float("nan")
        achieved[name] = rate
        print(f"{labels[name]:34}{child.seconds:8.2f}{span or float('nan'):8.2f}{rate:8.1f}"
              f"{rate / quota * 100:8.1f}%{n / child.seconds:10.1f}{stats['import_arrivals_peak_1s']:9d}"
              f"{import_requests(stats):10d}{stats['throttled']:10d}")
    ours_stats, sdk_stats = results["ours"][1], results["sdk"][1]
    ideal = n / quota
    print(f"ideal: {ideal:.1f} s at exactly the quota; ours {results['ours'][0].seconds / ideal:.3f}x "
          f"of it in wall time; throttled answers: ours {ours_stats['throttled']}, "
          f"sdk {sdk_stats['throttled']}")
    failures = []
    if not achieved["ours"] >= 0.97 * quota:
        failures.append(f"achieved {achieved['ours']:.1f}/s is under 97% of the quota")
    if ours_stats["import_arrivals_peak_1s"] > quota:
        failures.append(f"peak second {ours_stats['import_arrivals_peak_1s']} is over the quota")
    if ours_stats["throttled"]:
        failures.append(f"{ours_stats['throttled']} throttled answers")
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
