"""Output of issue #13: the summary line lists only non-zero counters; ``-`` means standard output
for ``report --out`` and ``run --summary``; one atomic-write helper that fsyncs the directory."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest

from pipeline.files import write_atomic
from pipeline.report.summary import summary_line
from pipeline.run.stats import RunStats
from tests.run_helpers import SimProcess, cli, run_against, write_jobs


def test_summary_line_lists_only_counters_that_are_not_zero() -> None:
    assert summary_line(RunStats(rows=24, imported=24, requests=24), 2.34) == "rows 24: imported 24 in 2.3 s"
    line = summary_line(RunStats(rows=30, imported=20, invalid=3, deferred=7, requests=26, throttled=6), 9.0)
    assert line == ("rows 30: imported 20, invalid 3, deferred 7; 26 ImportImage requests (6 throttled) "
                    "in 9.0 s")
    assert summary_line(RunStats(), 0.05) == "rows 0: nothing to do in 0.1 s"


def test_report_out_dash_and_summary_dash_write_to_standard_output(tmp_path: Path) -> None:
    """No file named ``-`` is created; the CSV and the JSON come out on stdout."""
    jobs, journal = tmp_path / "jobs.csv", tmp_path / "j.jsonl"
    write_jobs(jobs, 6)
    with SimProcess() as sim:
        result = cli("run", str(jobs), "--endpoint", sim.url, "--journal", str(journal), "--quiet",
                     "--summary", "-", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["counts"]["imported"] == 6
    report = cli("report", "--journal", str(journal), "--out", "-", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    rows = list(csv.DictReader(io.StringIO(report.stdout)))
    assert len(rows) == 6
    assert "standard output" in report.stderr
    assert not (tmp_path / "-").exists()


def test_write_atomic_fsyncs_the_directory_and_keeps_the_mode(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The rename is made durable: the directory is fsynced after it (the summary's old helper
    fsynced only the file)."""
    synced: list[bool] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    target = tmp_path / "out" / "summary.json"
    write_atomic(target, b"{}\n")
    assert synced == [False, True]
    assert target.read_bytes() == b"{}\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["summary.json"]


def test_a_run_summary_file_is_written_through_the_one_helper(tmp_path: Path) -> None:
    jobs, journal = tmp_path / "jobs.csv", tmp_path / "j.jsonl"
    write_jobs(jobs, 3)
    with SimProcess() as sim:
        code, err = run_against(sim, jobs, journal, "--summary", str(tmp_path / "s.json"))
    assert code == 0, err
    assert json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))["exit_code"] == 0
    assert "rows 3: imported 3 in " in err
