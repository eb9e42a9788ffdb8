"""Benchmark scale: a 1,000,000-row job list and a 1,000,000-record journal, time and peak RSS.

Run: .venv/bin/python tests/bench/bench_scale.py [--rows 1000000] [--records 1000000]
Each measurement is a child process (os.wait4: its own peak RSS and CPU). Job list: `ens-migrate
validate` and `ens-migrate run --dry-run` (no journal yet) against a naive baseline that reads
every row into a list (csv.DictReader). Journal: pipeline.journal.reader.read_ledger folding a journal of
RECORDS lines written with pipeline.journal.records.encode (half job.attempt with parameters, half
job.imported: RECORDS / 2 jobs) against a naive baseline that json.loads every line into a list.
Goals (exit 1 when missed): validate and --dry-run under 100 MB; read_ledger under 5 s and 300 MB.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness import Child, check, machine, ours, run_child, write_jobs

from pipeline.journal import records

NAIVE_ROWS = """
import csv, sys
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
print(len(rows), len({r["ImageName"] for r in rows}))
"""
NAIVE_JOURNAL = """
import json, sys
with open(sys.argv[1], "rb") as f:
    recs = [json.loads(line) for line in f]
print(len(recs))
"""
FOLD = """
import sys, time
from pathlib import Path
from pipeline.journal.reader import read_ledger
started = time.perf_counter()
ledger = read_ledger(Path(sys.argv[1]))
print(len(ledger.jobs), ledger.records, round(time.perf_counter() - started, 3))
"""


def write_journal(path: Path, count: int) -> None:
    """A journal of ``count`` records: an attempt (with parameters) and an import per job."""
    with path.open("wb") as out:
        buffer: list[bytes] = []
        for i in range(count // 2):
            name = f"img-{i:07d}"
            fp = f"{i:032x}"
            params = {"ImageName": name, "ComputeType": "ens_vm", "OSSRegion": "cn-beijing",
                      "OSSBucket": "bucket", "OSSObject": f"images/{name} v1.qcow2", "OSType": "linux",
                      "Platform": "centos", "ImageFormat": "qcow2", "Architecture": "x86_64",
                      "OSVersion": "7.9"}
            buffer.append(records.encode(records.JOB_ATTEMPT, name, {
                "fp": fp, "attempt": 1, "source": "jobs.csv", "line": i + 2, "params": params}))
            buffer.append(records.encode(records.JOB_IMPORTED, name, {
                "fp": fp, "attempt": 1, "image_id": f"m-{i:020x}", "request_id": f"{i:08X}-0000-4000-8000",
                "via": "import"}))
            if len(buffer) >= 20_000:
                out.write(b"".join(buffer))
                buffer.clear()
        out.write(b"".join(buffer))


def row(label: str, child: Child, unit: int) -> None:
    """One table line."""
    print(f"{label:44}{child.seconds:9.2f}{unit / child.seconds:12,.0f}{child.cpu:8.2f}"
          f"{child.maxrss_mb:10.1f}")


def main() -> int:
    """Generate, measure, print, check the budgets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        jobs = write_jobs(tmp / "jobs.csv", args.rows)
        journal = tmp / "journal.jsonl"
        write_journal(journal, args.records)
        sizes = (jobs.stat().st_size / 1e6, journal.stat().st_size / 1e6)
        validate = run_child(ours("validate", str(jobs)))
        check(validate, "ens-migrate validate")
        dry = run_child(ours("run", str(jobs), "--dry-run", "--journal", str(tmp / "none.jsonl")))
        check(dry, "ens-migrate run --dry-run")
        naive_rows = run_child([py, "-c", NAIVE_ROWS, str(jobs)])
        check(naive_rows, "naive job-list baseline")
        fold = run_child([py, "-c", FOLD, str(journal)])
        check(fold, "read_ledger")
        naive_journal = run_child([py, "-c", NAIVE_JOURNAL, str(journal)])
        check(naive_journal, "naive journal baseline")
    print(f"scale: {args.rows:,} rows ({sizes[0]:.0f} MB CSV), {args.records:,} journal records "
          f"({sizes[1]:.0f} MB); {machine()}")
    print(f"{'measurement':44}{'seconds':>9}{'per second':>12}{'CPU s':>8}{'peak MB':>10}")
    row("ens-migrate validate", validate, args.rows)
    row("ens-migrate run --dry-run", dry, args.rows)
    row("naive: list(csv.DictReader) (baseline)", naive_rows, args.rows)
    row("read_ledger (fold the journal)", fold, args.records)
    row("naive: json.loads every line into a list", naive_journal, args.records)
    fold_inner = float(fold.stdout.split()[-1])
    print(f"read_ledger itself (inside the child, start-up excluded): {fold_inner:.2f} s")
    print(f"ratio validate/naive: time {validate.seconds / naive_rows.seconds:.2f}x, "
          f"peak RSS {validate.maxrss_mb / naive_rows.maxrss_mb:.2f}x; dry-run/naive peak RSS "
          f"{dry.maxrss_mb / naive_rows.maxrss_mb:.2f}x; read_ledger/naive: time "
          f"{fold.seconds / naive_journal.seconds:.2f}x, "
          f"peak RSS {fold.maxrss_mb / naive_journal.maxrss_mb:.2f}x")
    failures = []
    for label, child, budget in (("validate", validate, 100.0), ("run --dry-run", dry, 100.0),
                                 ("read_ledger", fold, 300.0)):
        if child.maxrss_mb >= budget:
            failures.append(f"{label} peak RSS {child.maxrss_mb:.1f} MB is over {budget:.0f} MB")
    if fold.seconds >= 5.0:
        failures.append(f"read_ledger took {fold.seconds:.2f} s (>= 5 s)")
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
