"""Flags checked before the lock (issue #13), usage errors exit 2, and a journal that is a
directory, holds wrong-typed records or a newer schema: exit 2 with FILE:LINE, no traceback.
The CLI runs forked (``cli_forked``); the exit codes of the real process are tests/test_audit.py's
and tests/test_reliability_input.py's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from tests.run_helpers import SimProcess, cli_forked, import_requests, write_jobs

DEAD = "http://127.0.0.1:9"
"""Nothing listens there: a command that got as far as sending would fail another way."""


def test_a_wait_timeout_typo_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    """``--wait-timeout 2hours`` was parsed after every import was sent, and named --max-duration."""
    write_jobs(tmp_path / "jobs.csv", 5)
    with SimProcess() as sim:
        result = cli_forked("run", str(tmp_path / "jobs.csv"), "--endpoint", sim.url, "--journal",
                     str(tmp_path / "j.jsonl"), "--wait", "--wait-timeout", "2hours")
        assert result.returncode == ExitCode.USAGE, result.stderr
        assert "--wait-timeout '2hours'" in result.stderr
        assert "--max-duration" not in result.stderr
        assert import_requests(sim) == 0
    assert not (tmp_path / "j.jsonl").exists()


@pytest.mark.parametrize(("flags", "named"), [
    (("--dry-run", "--wait"), "--dry-run"),
    (("--wait", "--poll-interval", "-5"), "--poll-interval"),
    (("--wait", "--poll-interval", "0"), "--poll-interval"),
])
def test_contradictions_and_bad_values_are_usage_errors(tmp_path: Path, flags: tuple[str, ...],
                                                        named: str) -> None:
    write_jobs(tmp_path / "jobs.csv", 2)
    result = cli_forked("run", str(tmp_path / "jobs.csv"), "--endpoint", DEAD, "--journal",
                 str(tmp_path / "j.jsonl"), *flags)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_watch_with_a_missing_journal_is_a_usage_error(tmp_path: Path) -> None:
    result = cli_forked("watch", "--journal", str(tmp_path / "missing.jsonl"), "--endpoint", DEAD)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "missing.jsonl" in result.stderr


@pytest.mark.parametrize("command", ["run", "status", "watch", "dry-run"])
def test_a_journal_that_is_a_directory_is_exit_2(tmp_path: Path, command: str) -> None:
    write_jobs(tmp_path / "jobs.csv", 2)
    folder = tmp_path / "runs"
    folder.mkdir()
    args = {"run": ["run", str(tmp_path / "jobs.csv"), "--endpoint", DEAD, "--journal", str(folder)],
            "dry-run": ["run", str(tmp_path / "jobs.csv"), "--dry-run", "--journal", str(folder)],
            "status": ["status", "--journal", str(folder)],
            "watch": ["watch", "--journal", str(folder), "--endpoint", DEAD]}[command]
    result = cli_forked(*args)
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "is a directory" in result.stderr or "is not a file" in result.stderr
    assert "Traceback" not in result.stderr


def _journal(path: Path, *records: dict[str, object]) -> Path:
    base = {"v": 1, "ts": "2026-12-01T00:00:00.000Z"}
    path.write_text("".join(json.dumps({**base, **rec}) + "\n" for rec in records), encoding="utf-8")
    return path


START = {"event": "run.start", "key": None, "target": DEAD}


@pytest.mark.parametrize(("record", "expected"), [
    ({"event": "job.attempt", "key": "img-1", "fp": "f", "attempt": "one"}, "wrong field type"),
    ({"event": "job.imported", "key": "img-1", "fp": "f", "attempt": 1}, "missing field 'image_id'"),
    ({"event": "rate.learned", "key": None, "rate": "fast"}, "wrong field type"),
    ({"v": 2, "event": "job.attempt", "key": "img-1", "attempt": 1},
     "schema version 2 is newer than this ens-migrate reads (version 1)"),
])
def test_a_bad_journal_record_is_exit_2_with_file_and_line(tmp_path: Path, record: dict[str, object],
                                                           expected: str) -> None:
    journal = _journal(tmp_path / "j.jsonl", START, record)
    result = cli_forked("status", "--journal", str(journal))
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert f"{journal}:2: " in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
