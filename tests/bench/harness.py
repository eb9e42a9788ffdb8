"""Shared benchmark plumbing: a simulator per side, children measured with os.wait4, job lists."""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.run_helpers import SimProcess, cli_env  # noqa: E402

BENCH = Path(__file__).resolve().parent
BASELINE = BENCH / "baseline_sdk.py"
HEADER = ("ImageName", "OSSBucket", "OSSObject", "OSSRegion", "Platform", "OSVersion")

__all__ = ["BASELINE", "ROOT", "Child", "SimProcess", "cli_env", "machine", "run_child",
           "write_jobs"]


@dataclass(frozen=True, slots=True)
class Child:
    """One measured child process."""

    seconds: float
    """Wall time from spawn to exit."""
    cpu: float
    """User + system CPU seconds of the child (its threads included)."""
    maxrss_mb: float
    code: int
    stdout: str
    stderr: str


def run_child(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              timeout: float = 600.0) -> Child:
    """Run ``argv`` to completion; measure it alone with ``os.wait4`` (not RUSAGE_CHILDREN, which
    would mix in the simulator and any earlier child)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=cli_env(env), cwd=ROOT)
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Child(elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode,
                     out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def ours(*args: str) -> list[str]:
    """argv for our CLI in this interpreter."""
    return [sys.executable, "-m", "pipeline", *args]


def baseline(*args: str) -> list[str]:
    """argv for the official-SDK baseline script."""
    return [sys.executable, str(BASELINE), *args]


def write_jobs(path: Path, count: int, *, prefix: str = "img", start: int = 0) -> Path:
    """A valid CSV job list; both sides send the same ImportImage parameters for it."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(HEADER)
        for i in range(start, start + count):
            name = f"{prefix}-{i:07d}"
            out.writerow([name, "bucket", f"images/{name} v1.qcow2", "cn-beijing", "centos", "7.9"])
    return path


def import_requests(stats: Mapping[str, Any]) -> int:
    """ImportImage requests the simulator received, whatever their outcome."""
    return sum(stats["requests"].get("ImportImage", {}).values())


def check(child: Child, what: str) -> None:
    """Stop the benchmark when a side failed: its figures would mean nothing."""
    if child.code != 0:
        sys.exit(f"{what} exited {child.code}:\n{child.stderr[-2000:]}")


def baseline_result(child: Child) -> dict[str, Any]:
    """The baseline's JSON summary (its last stdout line)."""
    check(child, "baseline_sdk.py")
    data: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return data


def machine() -> str:
    """``nproc`` and the CPU model, for the figures' header."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs, {model}, Python {platform.python_version()}"
