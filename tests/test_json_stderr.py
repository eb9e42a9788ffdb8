"""``--log-format json`` (issue #13): every stderr line is a JSON object, whichever command writes
it and however the format was chosen (flag, ``ENS_MIGRATE_LOG_FORMAT``, ``[run] log_format``);
standard output, the command's product, is unchanged."""

from __future__ import annotations

import json
import logging
import os
import pty
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.oss_helpers import object_line, write_objects
from tests.run_helpers import FAST, SimProcess, cli, cli_env, write_jobs

JSON_ENV = {"ENS_MIGRATE_LOG_FORMAT": "json"}


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every non-empty line of ``stderr`` decoded; fail naming the first line that is not JSON."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    events = []
    for line in lines:
        try:
            doc = json.loads(line)
        except ValueError:
            pytest.fail(f"a stderr line is not JSON: {line!r}\nstderr:\n{stderr}")
        assert isinstance(doc, dict), line
        assert {"event", "message", "level", "timestamp"} <= set(doc), line
        events.append(doc)
    return events


def _usage_cases(tmp_path: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    jobs, journal = str(tmp_path / "jobs.csv"), str(tmp_path / "j.jsonl")
    config = tmp_path / "json.toml"
    config.write_text('[run]\nlog_format = "json"\n', encoding="utf-8")
    (tmp_path / "folder").mkdir()
    return {
        # click's own parse errors: the format is known from the flag (before or after the bad
        # flag) or from the environment.
        "bad value, flag first": (["run", jobs, "--log-format", "json", "--rate", "abc"], {}),
        "bad value, flag after": (["run", jobs, "--rate", "abc", "--log-format=json"], {}),
        "no such option, env": (["run", jobs, "--bogus"], JSON_ENV),
        "missing argument, env": (["run"], JSON_ENV),
        # our own refusals, after the settings are resolved (the config file chose json).
        "contradiction": (["run", jobs, "--journal", journal, "--log-format", "json", "--dry-run",
                           "--wait"], {}),
        "journal is a folder, config": (["run", jobs, "--journal", str(tmp_path / "folder"),
                                         "--config", str(config)], {}),
        "watch, no journal": (["watch", "--journal", journal, "--log-format", "json"], {}),
        "status, no journal, env": (["status", "--journal", journal], JSON_ENV),
    }


@pytest.mark.parametrize("case", ["bad value, flag first", "bad value, flag after", "no such option, env",
                                  "missing argument, env", "contradiction", "journal is a folder, config",
                                  "watch, no journal", "status, no journal, env"])
def test_a_usage_error_is_one_json_line(tmp_path: Path, case: str) -> None:
    """``ens-migrate: error: ...`` and click's ``Usage: ... Error: ...`` block were plain text."""
    write_jobs(tmp_path / "jobs.csv", 2)
    args, env = _usage_cases(tmp_path)[case]
    result = cli(*args, env=env)
    assert result.returncode == 2, result.stderr
    events = json_lines(result.stderr)
    errors = [e for e in events if e["level"] == "error"]
    assert len(errors) == 1, events
    assert errors[0]["exit_code"] == 2
    assert errors[0]["message"].startswith("ens-migrate: error: ")


def test_a_usage_error_without_json_keeps_its_text(tmp_path: Path) -> None:
    """The console form is what it was: click's usage block, and our one-line errors."""
    write_jobs(tmp_path / "jobs.csv", 2)
    result = cli("run", str(tmp_path / "jobs.csv"), "--rate", "abc")
    assert result.returncode == 2
    assert result.stderr.startswith("Usage: ens-migrate run [OPTIONS] JOBS...\n")
    assert "Error: Invalid value for '--rate': 'abc' is not a valid float." in result.stderr
    result = cli("run", str(tmp_path / "jobs.csv"), "--journal", str(tmp_path / "j.jsonl"), "--dry-run",
                 "--wait")
    assert result.stderr == ("ens-migrate: error: --dry-run sends nothing, so --wait would have "
                             "nothing to wait for; drop one\n")


def test_a_dry_run_writes_json_on_stderr_and_its_plan_on_stdout(tmp_path: Path) -> None:
    """A dry run over a list with an invalid row, then a list that cannot be read: the warning and
    the error are JSON lines (the error was plain text); the plan stays text on stdout."""
    write_jobs(tmp_path / "jobs.csv", 4, invalid_every=4)
    (tmp_path / "more.json").write_text('[{"ImageName": "a", ', encoding="utf-8")
    result = cli("run", str(tmp_path / "jobs.csv"), str(tmp_path / "more.json"), "--journal",
                 str(tmp_path / "j.jsonl"), "--dry-run", "--log-format", "json",
                 env={"ENS_MIGRATE_RATEE": "1"})
    assert result.returncode == 65, result.stderr
    events = json_lines(result.stderr)
    assert [e["event"] for e in events] == ["ens_migrate.config.unknown_env", "ens_migrate.cli.error"]
    assert "more.json" in events[-1]["message"]
    assert events[-1]["exit_code"] == 65
    assert "jobs.csv:5: " in result.stdout  # the invalid row, as validate prints it


@pytest.mark.parametrize("chosen", ["flag", "env"])
def test_discover_reports_json_lines(tmp_path: Path, chosen: str) -> None:
    """Objects left out and the count line were plain text, and ENS_MIGRATE_LOG_FORMAT was not read."""
    objects = write_objects(tmp_path / "objects.jsonl", [
        object_line("disc-bkt", "img/one.qcow2"), object_line("disc-bkt", "img/empty.qcow2", 0),
        object_line("disc-bkt", "img/x y.qcow2"), object_line("disc-bkt", "img/x+y.qcow2")])
    flag, env = (["--log-format", "json"], {}) if chosen == "flag" else ([], JSON_ENV)
    with SimProcess("--oss-objects", str(objects)) as sim:
        result = cli("discover", "oss://disc-bkt/img/", "--oss-endpoint", sim.url, "--list-rate", "0", *flag,
                     env=env)
    assert result.returncode == 1, result.stderr
    events = json_lines(result.stderr)
    left_out = [e for e in events if e["event"] == "ens_migrate.discover.left_out"]
    assert len(left_out) == 2
    assert all(e["level"] == "warning" for e in left_out)
    (summary,) = [e for e in events if e["event"] == "ens_migrate.discover.summary"]
    assert (summary["listed"], summary["written"], summary["reported"]) == (4, 1, 2)
    assert result.stdout.splitlines()[0].startswith("ImageName,")  # the job list, unchanged


def test_validate_and_report_lines_are_json(tmp_path: Path) -> None:
    """``validate``'s count line and ``report``'s "wrote N jobs" line follow the chosen format."""
    write_jobs(tmp_path / "jobs.csv", 4, invalid_every=4)
    result = cli("validate", str(tmp_path / "jobs.csv"), env=JSON_ENV)
    assert result.returncode == 1
    (summary,) = json_lines(result.stderr)
    assert (summary["event"], summary["rows"], summary["invalid"]) == ("ens_migrate.validate.summary", 4, 1)
    assert "jobs.csv:5: " in result.stdout
    journal = tmp_path / "j.jsonl"
    run = cli("run", str(tmp_path / "jobs.csv"), "--simulate", "--journal", str(journal), "--quiet",
              env={**FAST, **JSON_ENV})
    assert run.returncode == 1, run.stderr
    json_lines(run.stderr)
    report = cli("report", "--journal", str(journal), "--out", "-", "--failed-only", env=JSON_ENV)
    assert report.returncode == 0, report.stderr
    events = json_lines(report.stderr)
    assert [e["event"] for e in events] == ["ens_migrate.report.written", "ens_migrate.report.left_out"]
    assert report.stdout.startswith("ImageName,")


def test_a_run_with_an_invalid_row_on_a_terminal_is_json(tmp_path: Path) -> None:
    """On a terminal the progress bar was drawn on stderr under ``--log-format json`` too: with
    JSON there is no bar, only the periodic progress event."""
    write_jobs(tmp_path / "jobs.csv", 4, invalid_every=4)
    with SimProcess() as sim:
        err = _stderr_on_a_terminal(["run", str(tmp_path / "jobs.csv"), "--endpoint", sim.url,
                                     "--journal", str(tmp_path / "j.jsonl"), "--log-format", "json"])
    assert "\x1b" not in err, repr(err)
    events = json_lines(err)
    names = [e["event"] for e in events]
    assert "ens_migrate.job.invalid" in names
    assert names[-1] == "ens_migrate.run.summary"


def _stderr_on_a_terminal(args: list[str]) -> str:
    """Run the CLI with a pseudo-terminal as stderr; return what it wrote there (CR LF -> LF)."""
    leader, follower = pty.openpty()
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child closed its end
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.run([sys.executable, "-m", "pipeline", *args], stdout=subprocess.PIPE,
                              stderr=follower, env=cli_env({"TERM": "xterm-256color", "COLUMNS": "100"}),
                              timeout=120, check=False)
    finally:
        os.close(follower)
    reader.join(timeout=10)
    os.close(leader)
    assert proc.returncode == 1
    return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def test_library_log_records_are_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """A library's stdlib log record (uvicorn under --simulate, asyncio) went to stderr through
    logging's last-resort handler as plain text: with JSON it is an event like ours."""
    import structlog

    from pipeline.log import configure_logging

    try:
        configure_logging(fmt="json")
        logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    finally:
        configure_logging(fmt="console")
        structlog.reset_defaults()
    (event,) = json_lines(capsys.readouterr().err)
    assert (event["event"], event["logger"], event["level"]) == (
        "ens_migrate.library.log", "uvicorn.error", "warning")
    assert event["message"] == "Invalid HTTP request received."


def test_an_unexpected_error_is_a_json_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A bug (any exception we did not raise on purpose) is one JSON line with its traceback, exit 1;
    on the console it stays Python's traceback."""
    import pipeline.cli.status
    from pipeline.cli.main import main

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    journal = tmp_path / "j.jsonl"
    journal.write_text("", encoding="utf-8")
    monkeypatch.setattr(pipeline.cli.status, "read_ledger", broken)
    monkeypatch.setenv("ENS_MIGRATE_LOG_FORMAT", "json")
    assert main(["status", "--journal", str(journal)]) == 1
    (event,) = json_lines(capsys.readouterr().err)
    assert event["event"] == "ens_migrate.cli.crashed"
    assert "RuntimeError: boom" in event["message"]
    assert "Traceback" in event["traceback"]
    monkeypatch.delenv("ENS_MIGRATE_LOG_FORMAT")
    with pytest.raises(RuntimeError, match="boom"):
        main(["status", "--journal", str(journal)])
