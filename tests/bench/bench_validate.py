"""Benchmark `ens-migrate validate` on a generated CSV against a bare csv.DictReader baseline.

Run: .venv/bin/python tests/bench/bench_validate.py --rows 1000000
Prints rows/second and the child's peak RSS for both, and their ratio. Fails (exit 1) when
validate's peak RSS reaches the 100 MB budget or it does not accept the valid file.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RSS_BUDGET_MB = 100.0
BASELINE = """
import csv, sys
names = set()
rows = 0
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    for row in csv.DictReader(f):
        rows += 1
        names.add(row["ImageName"])
print(rows, len(names))
"""


def generate(path: Path, rows: int) -> None:
    """Write a valid job list of ``rows`` rows with realistic, partly quoted values."""
    header = ["ImageName", "OSSBucket", "OSSObject", "OSSRegion", "Platform", "OSVersion",
              "DiskDeviceMapping", "TargetOSSRegionId", "LicenseType"]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for i in range(rows):
            if i % 10 == 0:
                mapping = ('[{"OSSBucket":"catalog-bj","OSSObject":"disks/' + str(i)
                           + '/system, disk.qcow2","OSSRegion":"cn-beijing"}]')
                writer.writerow([f"镜像-{i:07d}", "", "", "", "centos", "7.9", mapping, "cn-beijing", ""])
            else:
                writer.writerow([f"image-{i:07d}", "catalog-bj", f"images/{i % 97}/build {i}, final.qcow2",
                                 "cn-beijing", "ubuntu", "22.04", "", "", "BYOL"])


def measure(argv: list[str]) -> tuple[float, float, int, bytes]:
    """Run ``argv``; return (seconds, peak RSS in MB of that child, exit code, stderr tail)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        # wait4 gives this child's own rusage; RUSAGE_CHILDREN would be the max over all children.
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return elapsed, usage.ru_maxrss / 1024, proc.returncode, err.read()[-400:]


def main() -> int:
    """Generate, measure both, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "catalog.csv"
        generate(path, args.rows)
        size_mb = path.stat().st_size / 1e6
        ours = measure([sys.executable, "-m", "pipeline", "validate", str(path)])
        base = measure([sys.executable, "-c", BASELINE, str(path)])
    print(f"{args.rows} rows, {size_mb:.1f} MB CSV")
    print(f"{'':24}{'seconds':>10}{'rows/s':>12}{'peak RSS MB':>14}")
    for label, (secs, rss, _, _) in (("ens-migrate validate", ours), ("csv.DictReader + set", base)):
        print(f"{label:24}{secs:10.2f}{args.rows / secs:12,.0f}{rss:14.1f}")
    print(f"ratio (validate / baseline): time {ours[0] / base[0]:.2f}x, peak RSS {ours[1] / base[1]:.2f}x")
    if ours[2] != 0:
        print(f"FAIL: validate exited {ours[2]}: {ours[3].decode(errors='replace')}", file=sys.stderr)
        return 1
    if ours[1] >= RSS_BUDGET_MB:
        print(f"FAIL: peak RSS {ours[1]:.1f} MB is over the {RSS_BUDGET_MB:.0f} MB budget", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
