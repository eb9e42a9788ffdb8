"""Benchmark the client-side cost per ImportImage: ens-migrate run against the official SDK.

Run: .venv/bin/python tests/bench/bench_overhead.py [--jobs 5000] [--concurrency 32] [--repeat 1]
Each side imports the same job list into a fresh simulator (own process; no quota, no latency).
Ours runs with its journal and fsync on and --rate far above what is reached, once per HTTP
transport (ENS_MIGRATE_TRANSPORT=aiohttp, httpx); the baseline is baseline_sdk.py (the SDK's async
client under an asyncio.Semaphore of the same size). Measured per child with os.wait4: CPU seconds
(user+sys) per job and jobs per second; start-up (a run of an empty list) is shown apart and
subtracted for the "net" column. Exit 1 when ours (aiohttp) costs more CPU per job than the SDK.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from harness import Child, SimProcess, baseline, baseline_result, check, machine, ours, run_child, write_jobs


def side(name: str, jobs: Path, tmp: Path, concurrency: int, run: int) -> Child:
    """Run one side against a fresh simulator; check every job was accepted exactly once."""
    with SimProcess() as sim:
        port = sim.url.rsplit(":", 1)[1]
        if name == "sdk":
            child = run_child(baseline(str(jobs), "--endpoint", f"127.0.0.1:{port}",
                                       "--concurrency", str(concurrency)))
            baseline_result(child)
        else:
            child = run_child(ours("run", str(jobs), "--endpoint", sim.url, "--quiet",
                                   "--journal", str(tmp / f"{name}-{run}-{jobs.stem}.jsonl"),
                                   "--rate", "100000", "--concurrency", str(concurrency)),
                              env={"ENS_MIGRATE_TRANSPORT": name})
            check(child, f"ens-migrate run ({name})")
        stats = sim.stats()
    expected = sum(1 for _ in jobs.open()) - 1
    if stats["import_accepted"] != expected or stats["duplicate_names"]:
        sys.exit(f"{name}: simulator accepted {stats['import_accepted']} of {expected} "
                 f"(duplicates: {len(stats['duplicate_names'])})")
    return child


def main() -> int:
    """Measure the three sides (and their start-up), print the table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1, help="runs per side; the median is shown")
    parser.add_argument("--skip-httpx", action="store_true", help="leave the httpx transport out")
    args = parser.parse_args()
    sides = ("aiohttp", "sdk") if args.skip_httpx else ("aiohttp", "httpx", "sdk")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        jobs = write_jobs(tmp / "jobs.csv", args.jobs)
        empty = write_jobs(tmp / "empty.csv", 0)
        startup = {name: side(name, empty, tmp, args.concurrency, 0) for name in sides}
        runs: dict[str, list[Child]] = {name: [] for name in sides}
        for run in range(args.repeat):
            for name in sides:  # interleaved, so a noisy neighbour hurts every side alike
                runs[name].append(side(name, jobs, tmp, args.concurrency, run + 1))

    def med(name: str, attr: str) -> float:
        return statistics.median(getattr(c, attr) for c in runs[name])

    n = args.jobs
    print(f"overhead: {n} jobs, concurrency {args.concurrency}, no quota, no latency; {machine()}")
    print(f"{'side':34}{'wall s':>8}{'jobs/s':>9}{'CPU s':>8}{'CPU ms/job':>12}"
          f"{'start CPU s':>13}{'net ms/job':>12}{'RSS MB':>8}")
    labels = {"aiohttp": "ens-migrate run (aiohttp)", "httpx": "ens-migrate run (httpx transport)",
              "sdk": "official SDK async + Semaphore"}
    per_job: dict[str, float] = {}
    net: dict[str, float] = {}
    for name in sides:
        wall, cpu, rss = med(name, "seconds"), med(name, "cpu"), med(name, "maxrss_mb")
        per_job[name] = cpu / n * 1000
        net[name] = (cpu - startup[name].cpu) / n * 1000
        print(f"{labels[name]:34}{wall:8.2f}{n / wall:9.0f}{cpu:8.2f}{per_job[name]:12.3f}"
              f"{startup[name].cpu:13.2f}{net[name]:12.3f}{rss:8.1f}")
    rate = {name: n / med(name, "seconds") for name in sides}
    for name in sides[:-1]:
        print(f"ratio ours({name})/sdk: CPU per job {per_job[name] / per_job['sdk']:.2f}x "
              f"(net of start-up {net[name] / net['sdk']:.2f}x), "
              f"jobs/s {rate[name] / rate['sdk']:.2f}x")
    if "httpx" in sides:
        print(f"transport: httpx/aiohttp CPU per job {per_job['httpx'] / per_job['aiohttp']:.2f}x")
    if per_job["aiohttp"] > per_job["sdk"]:
        print("FAIL: ens-migrate costs more CPU per job than the SDK baseline", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
