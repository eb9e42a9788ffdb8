"""Run counters, the exit-code table of design.md §3, and the end-of-run summary."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from pipeline.report.summary import summary_document, summary_line, write_summary
from pipeline.run.stats import RunStats, StopReason, combine, exit_code


@pytest.mark.parametrize(("counters", "stop", "expected"), [
    ({}, None, 0),
    ({"imported": 5, "skipped_done": 3, "adopted": 1}, None, 0),
    ({"imported": 5, "failed": 1}, None, 1),
    ({"invalid": 1}, None, 1),
    ({"in_doubt": 1}, None, 1),
    ({"skipped_failed": 1}, None, 1),
    ({"imported": 1}, StopReason.DEADLINE, 3),
    ({"failed": 1}, StopReason.SIGNAL, 3),
    ({}, StopReason.RETRY_BUDGET, 3),
    ({"failed": 9}, StopReason.BREAKER, 4),
    ({}, StopReason.INPUT, 65),
    ({"failed": 1}, StopReason.ABORT, 130),
])
def test_exit_code(counters: dict[str, int], stop: StopReason | None, expected: int) -> None:
    """Stops decide first (abort 130, breaker 4, input 65, any other 3); then any job not done
    (failed, invalid, in doubt, failed earlier) makes 1; otherwise 0."""
    assert exit_code(RunStats(**counters), stop) == expected


def test_every_exit_code_has_a_meaning() -> None:
    """Each code the table can produce is an ExitCode, the contract's eight codes exactly."""
    produced = {exit_code(RunStats(), s) for s in StopReason} | {0, 1}
    assert produced <= {int(c) for c in ExitCode}
    assert {int(c) for c in ExitCode} == {0, 1, 2, 3, 4, 65, 75, 130}
    assert ExitCode.meaning_of(99) == ExitCode.meaning_of(None) == "unknown"


def test_help_text_lists_every_code_with_its_detail() -> None:
    """``--help``'s block is generated from the enum: one line per code, in order."""
    lines = ExitCode.help_text().splitlines()
    assert lines[:2] == ["\b", "Exit codes:"]
    assert [line.split()[0] for line in lines[2:]] == [str(int(c)) for c in ExitCode]
    assert all(c.detail in ExitCode.help_text() for c in ExitCode)


@pytest.mark.parametrize(("run", "wait", "expected"), [
    (0, 0, 0), (0, 1, 1), (0, 3, 3), (1, 0, 1), (1, 1, 1), (1, 3, 3),
    (3, 0, 3), (3, 1, 3), (4, 0, 4), (4, 3, 4), (65, 1, 65), (130, 0, 130), (2, 3, 2),
])
def test_combine_run_and_wait(run: int, wait: int, expected: int) -> None:
    """``run --wait``: a finished run (0/1) takes the worse of its code and the wait's (1 images
    failed, 3 still importing); a stopped, aborted or refused run keeps its own code."""
    assert combine(run, wait) == expected


def test_done_counts_every_way_of_being_done() -> None:
    """``done`` is imported now + adopted + done in an earlier run."""
    assert RunStats(imported=2, adopted=3, skipped_done=4, failed=7).done == 9


def test_to_json_drops_in_flight_and_adds_done() -> None:
    """The JSON counters leave out the transient in-flight gauge and include ``done``."""
    data = RunStats(imported=1, in_flight=3).to_json()
    assert "in_flight" not in data
    assert data["done"] == 1
    json.dumps(data)


def test_summary_document() -> None:
    """The summary names the stop, the exit code and its meaning, and a request rate."""
    stats = RunStats(rows=10, imported=8, requests=20)
    doc = summary_document(stats, stop=StopReason.DEADLINE, detail="time window reached", code=3,
                           elapsed=4.0, rate=9.5, journal="j.jsonl")
    assert doc["stopped"] == "deadline"
    assert (doc["exit_code"], doc["exit_meaning"]) == (3, ExitCode.STOPPED.meaning)
    assert doc["import_rate_per_second"] == 5.0
    assert doc["counts"]["imported"] == 8


def test_summary_zero_elapsed() -> None:
    """A run with no measurable duration reports a rate of 0, not a division error."""
    doc = summary_document(RunStats(), stop=None, detail=None, code=0, elapsed=0.0, rate=1.0,
                           journal="j")
    assert doc["import_rate_per_second"] == 0.0
    assert doc["stopped"] is None


def test_summary_line_mentions_counts() -> None:
    """The human line carries the counts a person looks for."""
    text = summary_line(RunStats(rows=3, imported=1, failed=1, invalid=1, requests=4), 2.0)
    assert "rows 3" in text
    assert "imported 1" in text
    assert "failed 1" in text


def test_write_summary_atomic_private(tmp_path: Path) -> None:
    """The summary file is written whole, readable by its owner only, with no temp file left."""
    target = tmp_path / "out" / "summary.json"
    old = os.umask(0)
    try:
        write_summary(target, {"exit_code": 0})
        write_summary(target, {"exit_code": 1})
    finally:
        os.umask(old)
    assert json.loads(target.read_text())["exit_code"] == 1
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["summary.json"]
