"""Faults: 20% mixed transient faults lose and double nothing; a job ENS refuses for good is sent
once and recorded failed; throttling (quota below --rate) slows the run but never fails a job.

The simulator's counters are the truth: ``accepted_by_name`` (images created per name) and
``requests`` (ImportImage answers by outcome code).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.run_helpers import FAST, SimProcess, cli, imported_counts, journal_records, write_jobs

pytestmark = pytest.mark.timeout(120)

MIXED_20 = ("--fault", "error500=0.04", "--fault", "error503=0.04", "--fault", "drop_before=0.03",
            "--fault", "drop_after=0.03", "--fault", "slow_after=0.03", "--fault", "garbage=0.03",
            "--slow-seconds", "0.6", "--latency", "0.0-0.01")


def _jobs(path: Path, good: int, refused: int) -> tuple[list[str], list[str]]:
    """``good`` centos rows and ``refused`` freebsd rows (valid for a widened rule, refused by ENS)."""
    good_names = [f"good-{i:04d}" for i in range(good)]
    bsd_names = [f"bsd-{i:04d}" for i in range(refused)]
    lines = ["ImageName,OSSBucket,OSSObject,Platform"]
    lines += [f"{n},b,o/{n}.qcow2,centos" for n in good_names]
    lines += [f"{n},b,o/{n}.qcow2,freebsd" for n in bsd_names]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return good_names, bsd_names


def _widened(tmp_path: Path) -> Path:
    config = tmp_path / "wide.toml"
    config.write_text('[rules]\nPlatform = ["centos", "ubuntu", "freebsd"]\n', encoding="utf-8")
    return config


def test_mixed_transient_faults_import_every_job_once_and_send_each_refused_job_once(tmp_path: Path) -> None:
    """Under 20% transient faults (5xx, drops before and after creation, slow answers, HTML bodies):
    every good job is imported exactly once, each refused job gets ENS's permanent refusal exactly
    once and is journaled failed once, and the run exits 1 (some jobs failed)."""
    good, refused = _jobs(tmp_path / "jobs.csv", good=200, refused=20)
    journal = tmp_path / "j.jsonl"
    with SimProcess(*MIXED_20, "--seed", "21") as sim:
        result = cli("run", str(tmp_path / "jobs.csv"), "--endpoint", sim.url, "--journal", str(journal),
                     "--config", str(_widened(tmp_path)), "--rate", "400", "--timeout", "0.3",
                     "--max-attempts", "10", "--quiet", env=FAST)
        stats = sim.stats()
        counts = imported_counts(sim.images())
    assert result.returncode == 1, result.stderr
    assert sum(stats["faults"].values()) >= 20, stats["faults"]  # the faults did happen
    assert counts == dict.fromkeys(good, 1)
    assert stats["duplicate_names"] == {}
    assert stats["requests"]["ImportImage"].get("InvalidParameter.Platform") == len(refused)
    failed = Counter(r["key"] for r in journal_records(journal) if r["event"] == "job.failed")
    assert failed == Counter(refused)


def test_throttling_slows_the_run_but_never_fails_a_job(tmp_path: Path) -> None:
    """A quota of 25/s under --rate 75: the simulator throttles, the run backs off, every job is
    imported once, no job.failed record carries a Throttling code, and the exit code is 0."""
    valid, _ = write_jobs(tmp_path / "jobs.csv", 60)
    journal = tmp_path / "j.jsonl"
    with SimProcess("--quota", "25", "--latency", "0.0-0.02") as sim:
        result = cli("run", str(tmp_path / "jobs.csv"), "--endpoint", sim.url, "--journal", str(journal),
                     "--rate", "75", "--quiet", env=FAST)
        stats = sim.stats()
        counts = imported_counts(sim.images())
    assert result.returncode == 0, result.stderr
    assert stats["throttled"] > 0, "the quota must actually bite for this test to mean anything"
    assert counts == dict.fromkeys(valid, 1)
    records = journal_records(journal)
    assert [r for r in records if r["event"] == "job.failed"] == []
    assert any(r["event"] == "job.error" and r.get("throttled") for r in records)
