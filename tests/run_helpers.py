"""Helpers for end-to-end tests: a simulator in its own process, the CLI in a subprocess, job lists."""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from pipeline.cli.main import COMMANDS, main
from pipeline.simulator.config import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET
from tests.loopback import LOOPBACK_GUARD

START_DEADLINE = 20.0


class SimProcess:
    """``ens-migrate simulator`` running in a subprocess on a free loopback port."""

    def __init__(self, *args: str, env: Mapping[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "simulator", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(env),
        )
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if not first.startswith("ENS simulator listening on "):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=5)
            raise RuntimeError(f"simulator did not start: {first!r} {err!r}")
        self.url = first.strip().rsplit(" ", 1)[1]

    def stats(self) -> dict[str, Any]:
        """``/_sim/stats``."""
        data: dict[str, Any] = httpx.get(f"{self.url}/_sim/stats", timeout=10).json()
        return data

    def images(self) -> list[dict[str, Any]]:
        """``/_sim/images``."""
        data: list[dict[str, Any]] = httpx.get(f"{self.url}/_sim/images", timeout=10).json()["Images"]
        return data

    def stop(self) -> None:
        """SIGKILL, then reap. No test reads what a graceful stop would leave (its --state file is
        an input here); a graceful stop took 0.2 s a simulator, waiting for uvicorn's next tick. The
        simulator's own exit on SIGINT/SIGTERM is tests/test_simulator_command.py's."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()

    def __enter__(self) -> SimProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A clean environment for the CLI: the simulator's dev key pair, no ENS_MIGRATE_* leaks, credential
    look-ups kept on loopback (tests/loopback.py)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ENS_MIGRATE_", "ALIBABA_CLOUD_"))}
    env.update({"ALIBABA_CLOUD_ACCESS_KEY_ID": DEV_ACCESS_KEY_ID,
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET": DEV_ACCESS_KEY_SECRET,
                "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true",
                "ALIBABA_CLOUD_CREDENTIALS_FILE": "/nonexistent/credentials.ini",
                "PYTHONUNBUFFERED": "1",
                **LOOPBACK_GUARD})
    if extra:
        env.update(extra)
    return env


def cli(*args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pipeline ARGS`` to completion."""
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                          env=cli_env(env), cwd=cwd, timeout=timeout, check=False)


@dataclass(frozen=True, slots=True)
class Result:
    """What a forked CLI invocation left behind (the fields of ``subprocess.CompletedProcess``)."""

    returncode: int
    stdout: str
    stderr: str


def cli_forked(*args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Result:
    """``ens-migrate ARGS`` in a forked child of the test process: its own fds 1/2, environment,
    working directory and exit status, as ``cli`` gives, minus the interpreter's start-up.

    The command's module is imported here first, so the child shares it instead of importing the
    HTTP stack again (a usage error in 10 ms instead of 0.5 s). An exception escaping ``main``
    prints its traceback and exits 99, as the interpreter would (exit 1 there); tests look for the
    word ``Traceback`` either way. For what is about the process itself (``python -m pipeline``,
    signals, a kill), use ``cli``/``cli_popen``; tests/test_reliability_input.py shows both agree.
    """
    target = COMMANDS.get(args[0]) if args else None
    if target is not None:
        importlib.import_module(target.partition(":")[0])
    importlib.import_module("anyio._backends._asyncio")  # what a command's first anyio.run imports
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 99
            try:
                os.environ.clear()
                os.environ.update(cli_env(env))
                if cwd is not None:
                    os.chdir(cwd)
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8",
                                              line_buffering=True)
                sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                              line_buffering=True)
                code = main(list(args))
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return Result(os.waitstatus_to_exitcode(status), out.read().decode("utf-8"),
                      err.read().decode("utf-8"))


def cli_popen(*args: str, env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen[str]:
    """Start ``python -m pipeline ARGS`` without waiting."""
    return subprocess.Popen([sys.executable, "-m", "pipeline", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cli_env(env), cwd=cwd)


def write_jobs(path: Path, count: int, *, invalid_every: int = 0, seed: int = 7,
               prefix: str = "img") -> tuple[list[str], list[str]]:
    """A CSV job list; every ``invalid_every``-th row is invalid. Return (valid names, invalid names)."""
    rng = random.Random(seed)
    valid: list[str] = []
    invalid: list[str] = []
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["ImageName", "OSSBucket", "OSSObject", "OSSRegion", "Platform", "OSVersion"])
        for i in range(count):
            name = f"{prefix}-{i:06d}"
            if invalid_every and i % invalid_every == invalid_every - 1:
                bad = rng.choice(["name", "platform"])
                if bad == "name":
                    out.writerow([f"9{name}", "bucket", f"images/{name}.qcow2", "cn-beijing", "centos", "7"])
                else:
                    out.writerow([name, "bucket", f"images/{name}.qcow2", "cn-beijing", "windows95", "7"])
                invalid.append(name)
                continue
            out.writerow([name, "bucket", f"images/{name} v1.qcow2", "cn-beijing", "centos", "7.9"])
            valid.append(name)
    return valid, invalid


def imported_counts(images: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """ImageName -> how many images the simulator holds with that name."""
    counts: dict[str, int] = {}
    for image in images:
        counts[image["ImageName"]] = counts.get(image["ImageName"], 0) + 1
    return counts


def wait_for_line(path: Path, needle: str, deadline: float) -> bool:
    """Poll a file until it contains ``needle`` or the deadline (monotonic) passes."""
    while time.monotonic() < deadline:
        if path.exists() and needle in path.read_text(encoding="utf-8", errors="replace"):
            return True
        time.sleep(0.05)
    return False


def journal_records(path: Path) -> list[dict[str, Any]]:
    """Every complete record of a journal."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


FAST = {"ENS_MIGRATE_RECONCILE_DELAY": "0.05", "ENS_MIGRATE_RECONCILE_HORIZON": "1",
        "ENS_MIGRATE_LOOKUP_RATE": "200"}
"""Environment for test runs: look ambiguous attempts up after 50 ms instead of a second, trust
"absent" 1 s after the attempt instead of 60 (the simulator's faults create at once), and look up
at 200/s instead of 10 (the simulator has no Describe quota unless a test gives one, and then the
test sets the lookup rate to match: tests/test_lookups.py)."""


def run_against(sim: SimProcess, jobs: Path, journal: Path, *extra: str,
                env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """``run JOBS`` against ``sim`` (quiet, fast reconcile); return (exit code, stderr)."""
    result = cli("run", str(jobs), "--endpoint", sim.url, "--journal", str(journal), "--quiet", *extra,
                 env={**FAST, **(env or {})})
    return result.returncode, result.stderr


def import_requests(sim: SimProcess) -> int:
    """ImportImage requests the simulator has seen, whatever their outcome."""
    return sum(sim.stats()["requests"].get("ImportImage", {}).values())
