"""Benchmark the adaptive rate: a quota ens-migrate is not told, found and kept, then remembered.

Run: .venv/bin/python tests/bench/bench_adaptive.py [--jobs 1200] [--quota 40] [--rate 200]
The simulator (own process) enforces --quota; ours runs with --rate 5x above it and has to find
the quota from Throttling.User answers (AIMD). Run 1 imports JOBS jobs; run 2 uses the same
journal (so it starts from the rate run 1 learned) on a list with JOBS new rows appended, against
the same simulator (a journal belongs to one endpoint). The baseline is baseline_sdk.py (no
limiter, concurrency 32, a throttled job sent again after 0.5 s) on a fresh simulator.
Figures: throttled answers as a share of ImportImage requests, and time against the ideal
JOBS / quota: "wall" is the whole process (start-up included), "span" the first to the last
ImportImage arrival (polled every 0.1 s). Goals (exit 1 when missed): run 1 throttled <= 5% of
its requests and wall time <= 1.15x ideal; run 2 throttled fewer times than run 1.
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


def measured(sim: SimProcess, argv: list[str], before: dict[str, Any]) -> dict[str, Any]:
    """Run ``argv`` against ``sim``; the simulator's counters it added, its times."""
    with ArrivalWatch(sim.url) as watch:
        child: Child = run_child(argv)
    after = sim.stats()
    return {"child": child, "span": watch.span(),
            "requests": import_requests(after) - import_requests(before),
            "throttled": after["throttled"] - before["throttled"],
            "accepted": after["import_accepted"] - before["import_accepted"],
            "duplicates": len(after["duplicate_names"])}


def main() -> int:
    """Run 1, run 2 on the same journal, the SDK baseline; print the table, check the goals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1200)
    parser.add_argument("--quota", type=int, default=40)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--latency", default="0.02-0.1")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    n, quota = args.jobs, args.quota
    sim_args = ("--quota", str(quota), "--latency", args.latency, "--seed", "1")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        first = write_jobs(tmp / "first.csv", n)
        both = write_jobs(tmp / "both.csv", 2 * n)
        journal = tmp / "ours.jsonl"

        def run(jobs: Path) -> list[str]:
            return ours("run", str(jobs), "--endpoint", sim.url, "--quiet", "--journal", str(journal),
                        "--rate", str(args.rate), "--concurrency", str(args.concurrency))

        with SimProcess(*sim_args) as sim:
            run1 = measured(sim, run(first), sim.stats())
            check(run1["child"], "ens-migrate run (run 1)")
            run2 = measured(sim, run(both), sim.stats())
            check(run2["child"], "ens-migrate run (run 2)")
        learned = [line for line in journal.read_text().splitlines() if '"rate.learned"' in line]
        with SimProcess(*sim_args) as sim:
            port = sim.url.rsplit(":", 1)[1]
            sdk = measured(sim, baseline(str(first), "--endpoint", f"127.0.0.1:{port}", "--concurrency",
                                         str(args.concurrency), "--retry-throttled"), sim.stats())
            baseline_result(sdk["child"])
    ideal = n / quota
    print(f"adaptive: {n} jobs per run, simulator --quota {quota} --latency {args.latency} (not told), "
          f"ours --rate {args.rate:g} --concurrency {args.concurrency}; {machine()}")
    print(f"{'side':40}{'wall s':>8}{'span s':>8}{'wall/ideal':>11}{'span/ideal':>11}"
          f"{'requests':>10}{'throttled':>10}{'share':>8}")
    rows = (("ens-migrate run 1 (fresh journal)", run1), ("ens-migrate run 2 (same journal, +N new)", run2),
            ("official SDK, no limiter", sdk))
    for label, res in rows:
        if res["accepted"] != n or res["duplicates"]:
            sys.exit(f"{label}: simulator accepted {res['accepted']} of {n} (duplicates {res['duplicates']})")
        span = res["span"] or float("nan")
        share = res["throttled"] / res["requests"]
        print(f"{label:40}{res['child'].seconds:8.2f}{span:8.2f}{res['child'].seconds / ideal:11.3f}"
              f"{span / ideal:11.3f}{res['requests']:10d}{res['throttled']:10d}{share * 100:7.1f}%")
    print(f"ideal {ideal:.1f} s per run at exactly the quota; rates learned (journal): "
          + ", ".join(line.split('"rate":')[1].rstrip("}") for line in learned))
    print(f"ratio throttled: run 2 / run 1 {run2['throttled'] / max(1, run1['throttled']):.2f}x, "
          f"run 1 / sdk {run1['throttled'] / max(1, sdk['throttled']):.3f}x")
    failures = []
    if run1["throttled"] > 0.05 * run1["requests"]:
        failures.append(f"run 1 throttled {run1['throttled']} of {run1['requests']} requests (> 5%)")
    if run1["child"].seconds > 1.15 * ideal:
        failures.append(f"run 1 took {run1['child'].seconds:.1f} s (> 1.15 x {ideal:.1f} s)")
    if run2["throttled"] >= max(1, run1["throttled"]):
        failures.append(f"run 2 was throttled {run2['throttled']} times, not fewer than run 1")
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
