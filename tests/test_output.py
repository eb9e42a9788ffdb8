"""Output of issue #13: the summary line lists only non-zero counters; ``-`` means standard output
for ``report --out`` and ``run --summary``; one atomic-write helper that fsyncs the directory."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
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


def test_log_format_json_makes_every_stderr_line_json(tmp_path: Path) -> None:
    """The banner and the summary too, not only the log events."""
    write_jobs(tmp_path / "jobs.csv", 4, invalid_every=4)
    result = cli("run", str(tmp_path / "jobs.csv"), "--simulate", "--journal", str(tmp_path / "j.jsonl"),
                 "--log-format", "json", env={"ENS_MIGRATE_RECONCILE_DELAY": "0.05",
                                              "ENS_MIGRATE_RATEE": "1"})
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line parses
    names = {e["event"] for e in events}
    assert {"ens_migrate.run.simulation", "ens_migrate.run.summary", "ens_migrate.config.unknown_env",
            "ens_migrate.job.invalid"} <= names
    summary = next(e for e in events if e["event"] == "ens_migrate.run.summary")
    assert summary["counts"]["imported"] == 3


def test_verbose_shows_each_attempt_and_no_color_keeps_escapes_out(tmp_path: Path) -> None:
    write_jobs(tmp_path / "jobs.csv", 3)
    with SimProcess() as sim:
        result = cli("run", str(tmp_path / "jobs.csv"), "--endpoint", sim.url, "--journal",
                     str(tmp_path / "j.jsonl"), "-v", "--log-format", "json")
        assert result.returncode == 0, result.stderr
        attempts = [json.loads(line) for line in result.stderr.splitlines()
                    if '"ens_migrate.job.attempt"' in line]
        assert len(attempts) == 3
        assert {a["level"] for a in attempts} == {"debug"}
        quiet = cli("run", str(tmp_path / "jobs.csv"), "--endpoint", sim.url, "--journal",
                    str(tmp_path / "k.jsonl"))
        assert "sending ImportImage" not in quiet.stderr


def test_no_color_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal the console log is coloured, unless NO_COLOR is set (https://no-color.org)."""
    from pipeline.log import colour_wanted

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert colour_wanted() is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert colour_wanted() is False
