"""Progress: done of a known total, skipped-as-done counted apart, and an ETA that is right."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from pipeline.joblist import readers
from pipeline.joblist.readers import estimate_rows
from pipeline.report.progress import Progress, figures
from pipeline.run.stats import RunStats


def test_eta_counts_the_rows_not_read_yet() -> None:
    """400 rows, 100 read and queued, 80 imported in 8 s: 320 are left at 10/s, so 32 s (the
    producer's small queue alone said 2 s)."""
    f = figures(RunStats(rows=100, queued=100, imported=80, requests=80), 8.0, 10.0, 400)
    assert f["eta"] == "32s"
    assert (f["done"], f["total"], f["percent"]) == (80, 400, 20.0)


def test_rows_done_earlier_count_as_done_but_not_toward_the_speed() -> None:
    """A rerun: 500 of the first 600 rows were done earlier. They count as done, and the unread
    rows are expected to need sending at the same share (1 in 6)."""
    stats = RunStats(rows=600, skipped_done=500, queued=100, imported=50, requests=50)
    f = figures(stats, 5.0, 10.0, 1000)
    assert (f["done"], f["already_done"], f["percent"]) == (550, 500, 55.0)
    # held 50 + unread 400 x 1/6 = 116.7 jobs at 10/s
    assert f["eta"] == "12s"


@pytest.mark.parametrize(("stats", "total", "eta"), [
    (RunStats(rows=10, queued=10, imported=10, requests=10), 10, "0s"),
    (RunStats(rows=5, queued=5), 100, "?"),
    (RunStats(rows=5, queued=5, imported=1, requests=1), None, "?"),
    (RunStats(rows=3000, queued=3000, imported=1000, requests=1000), 3000, "3m20s"),
])
def test_eta_edges(stats: RunStats, total: int | None, eta: str) -> None:
    """All done: 0s; nothing finished yet, or no total (stdin): unknown; long ones in minutes."""
    assert figures(stats, 100.0, 10.0, total)["eta"] == eta


def test_off_a_terminal_the_log_line_carries_the_same_figures() -> None:
    """Without a terminal, progress is a structured log line with done, total, percent and ETA."""
    with capture_logs() as logs:
        Progress(lambda: 10.0, total=400, tty=False).update(RunStats(rows=100, queued=100, imported=80))
    (event,) = logs
    assert event["event"] == "ens_migrate.run.progress"
    assert (event["done"], event["total"], event["percent"]) == (80, 400, 20.0)
    assert event["eta"] != "?"


def test_estimate_counts_rows_of_each_format(tmp_path: Path) -> None:
    """CSV lines after the header; JSON and JSON Lines by their ImageName keys (nested mappings
    and pretty-printing do not count); stdin is unknown."""
    csv = tmp_path / "a.csv"
    csv.write_text("ImageName,OSSBucket\na,b\nc,d\ne,f\n")
    rows = [{"ImageName": f"n{i}", "DiskDeviceMapping": [{"OSSBucket": "b", "OSSObject": "o"}]}
            for i in range(5)]
    array = tmp_path / "b.json"
    array.write_text(json.dumps(rows, indent=2))
    lines = tmp_path / "c.jsonl"
    lines.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    assert estimate_rows([str(csv)]) == 3
    assert estimate_rows([str(array)]) == 5
    assert estimate_rows([str(csv), str(array), str(lines)]) == 10
    assert estimate_rows(["-"]) is None
    assert estimate_rows([str(tmp_path / "missing.csv")]) is None


def test_estimate_finds_a_key_split_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The count reads in chunks; a key cut by a chunk boundary is counted once."""
    path = tmp_path / "j.jsonl"
    path.write_text("".join(json.dumps({"ImageName": f"name-{i}"}) + "\n" for i in range(40)))
    for chunk in (3, 7, 11, 64):
        monkeypatch.setattr(readers, "_CHUNK", chunk)
        assert estimate_rows([str(path)]) == 40
