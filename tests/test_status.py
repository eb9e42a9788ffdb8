"""`ens-migrate status`: a journal summarised as counts by state, failures by code, the last run."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from pipeline.cli.status import status
from pipeline.journal import records as r
from pipeline.journal.reader import read_ledger
from pipeline.report.status import Counts, summarize

Record = tuple[str, str | None, Mapping[str, Any]]


def write_journal(path: Path, recs: list[Record], *, torn: bytes = b"") -> Path:
    """Encode records with sequential timestamps (second n of the day), then a torn tail if any."""
    with path.open("wb") as handle:
        for n, (event, key, fields) in enumerate(recs):
            handle.write(r.encode(event, key, fields, ts=f"2026-11-26T01:{n // 60:02d}:{n % 60:02d}.000Z"))
        handle.write(torn)
    return path


def params(name: str, obj: str = "images/disk.qcow2") -> dict[str, str]:
    """ImportImage parameters as the worker journals them (``Job.query()``)."""
    return {"ImageName": name, "ComputeType": "ens_vm", "OSSRegion": "cn-beijing", "OSSBucket": "bkt",
            "OSSObject": obj, "OSType": "linux", "ImageFormat": "qcow2", "Architecture": "x86_64"}


def attempt(name: str, n: int, line: int) -> Record:
    fields: dict[str, Any] = {"fp": f"fp-{name}", "attempt": n}
    if n == 1:
        fields.update(source="jobs.csv", line=line, params=params(name))
    return (r.JOB_ATTEMPT, name, fields)


def invalid(line: int, name: str) -> Record:
    return (r.JOB_INVALID, f"#invalid:jobs.csv:{line}", {
        "source": "jobs.csv", "line": line, "name": name,
        "problems": [{"field": "ImageName", "message": f"{name!r} must start with a letter"}]})


RUN_1: list[Record] = [
    (r.RUN_START, None, {"concurrency": 8, "rate": 10.0, "start_rate": 10.0, "retry_failed": False}),
    invalid(4, "1-fixed-later"),
    invalid(9, "9-still-bad"),
    attempt("img-a", 1, 2),
    (r.JOB_IMPORTED, "img-a", {"fp": "fp-img-a", "attempt": 1, "image_id": "m-a", "request_id": "req-a1",
                               "via": "import"}),
    attempt("img-b", 1, 3),
    (r.JOB_ERROR, "img-b", {"code": "Throttling.User", "message": "Request was denied due to user flow "
                            "control.", "status": 400, "request_id": "req-b1", "ambiguous": False,
                            "throttled": True, "fp": "fp-img-b", "attempt": 1}),
    attempt("img-b", 2, 3),
    (r.JOB_ERROR, "img-b", {"code": "InternalError", "message": "The request processing has failed "
                            "due to some unknown error.", "status": 500, "request_id": "req-b2",
                            "ambiguous": False, "fp": "fp-img-b", "attempt": 2}),
    attempt("img-b", 3, 3),
    (r.JOB_FAILED, "img-b", {"code": "InternalError", "message": "The request processing has failed "
                             "due to some unknown error.", "status": 500, "request_id": "req-b3",
                             "reason": "gave up after 3 attempts"}),
    (r.RUN_END, None, {"stats": {"rows": 4, "failed": 1}, "stop": None, "detail": None, "exit_code": 1}),
]
RUN_2: list[Record] = [
    (r.RUN_START, None, {"concurrency": 8, "rate": 10.0, "start_rate": 10.0, "retry_failed": False}),
    invalid(9, "9-still-bad"),
    invalid(10, "10-new-bad"),
    attempt("img-c", 1, 5),
    (r.JOB_ERROR, "img-c", {"code": "Transport.MaybeSent", "message": "read timeout", "status": None,
                            "ambiguous": True, "fp": "fp-img-c", "attempt": 1}),
    (r.JOB_RECONCILED, "img-c", {"fp": "fp-img-c", "image_id": "m-c"}),
    (r.JOB_SKIPPED, "img-d", {"fp": "fp-img-d", "image_id": "m-d"}),
    attempt("img-e", 1, 7),
    (r.JOB_FAILED, "img-e", {"code": "InvalidParameter.OSSObject", "message": "The specified OSSObject "
                             "does not exist.", "status": 400, "request_id": None}),
    attempt("img-f", 1, 8),
    (r.JOB_FAILED, "img-f", {"code": "InvalidParameter.OSSObject", "message": "The specified OSSObject "
                             "does not exist.", "status": 400, "request_id": "req-f1"}),
    attempt("img-g", 1, 11),
    attempt("img-h", 1, 12),
    (r.JOB_ERROR, "img-h", {"code": "ServiceUnavailable", "message": "busy", "status": 503,
                            "request_id": "req-h1", "ambiguous": False, "fp": "fp-img-h", "attempt": 1}),
    (r.JOB_STATUS, "img-a", {"status": "Available", "seconds": 42.5}),
    attempt("img-i", 1, 13),
    (r.JOB_IMPORTED, "img-i", {"fp": "fp-img-i", "attempt": 1, "image_id": "m-i", "request_id": "req-i1",
                               "via": "import"}),
    (r.JOB_STATUS, "img-i", {"status": "Available", "seconds": 10.0}),
    (r.RATE_LEARNED, None, {"rate": 7.5}),
    (r.RUN_END, None, {"stats": {"rows": 12, "imported": 1}, "stop": "deadline",
                       "detail": "time window reached; run again to resume", "exit_code": 3}),
]
TORN = b'{"v":1,"ts":"2026-11-26T02:00:00.000Z","event":"job.imported","key":"img-g","image_id":"m-'


def scenario(tmp_path: Path) -> Path:
    """Two runs: imported, failed after retries, reconciled, existing, in doubt, pending, invalid
    rows from an old and a new run, a learned rate, image statuses, and a torn last line."""
    return write_journal(tmp_path / "run.journal.jsonl", RUN_1 + RUN_2, torn=TORN)


def json_status(journal: Path) -> dict[str, Any]:
    result = CliRunner().invoke(status, ["--journal", str(journal), "--json"])
    assert result.exit_code == 0, result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


def test_counts_every_state_and_splits_imported_by_how(tmp_path: Path) -> None:
    """Imported splits into imported now, adopted by reconcile and skipped existing; the rest by state."""
    ledger = read_ledger(scenario(tmp_path), detail=True)
    counts = summarize(ledger, journal="j").counts
    assert counts == Counts(imported=2, adopted=1, existing=1, failed=3, in_doubt=1, pending=1, invalid=2)
    assert (counts.done, counts.total) == (4, 11)


def test_invalid_rows_count_only_from_the_last_run(tmp_path: Path) -> None:
    """An old run's invalid row the last run did not journal again (fixed since) is not counted."""
    journal = write_journal(tmp_path / "j.jsonl", [*RUN_1, (r.RUN_START, None, {}), invalid(9, "x")])
    assert json_status(journal)["counts"]["invalid"] == 1


def test_ledger_remembers_the_run_that_last_wrote_each_key(tmp_path: Path) -> None:
    """JobLedger.run is the Ledger.runs count when the key's last record was folded."""
    ledger = read_ledger(scenario(tmp_path), detail=True)
    assert ledger.runs == 2
    assert {k: ledger.jobs[k].run for k in ("#invalid:jobs.csv:4", "#invalid:jobs.csv:9", "img-b", "img-a")} \
        == {"#invalid:jobs.csv:4": 1, "#invalid:jobs.csv:9": 2, "img-b": 1, "img-a": 2}


def test_torn_last_line_is_ignored_and_the_job_stays_in_doubt(tmp_path: Path) -> None:
    """An attempt whose outcome line was torn mid-write counts as in doubt, never as imported."""
    doc = json_status(scenario(tmp_path))
    assert (doc["counts"]["in_doubt"], doc["counts"]["imported"]) == (1, 2)
    assert doc["records"] == len(RUN_1) + len(RUN_2)


def test_failures_are_grouped_by_code_most_frequent_first(tmp_path: Path) -> None:
    """Each error code of the failed jobs has a count and one example job with message and RequestId."""
    doc = json_status(scenario(tmp_path))
    assert doc["failures"] == [
        {"code": "InvalidParameter.OSSObject", "count": 2, "example": {
            "job": "img-f", "message": "The specified OSSObject does not exist.", "request_id": "req-f1",
            "source": "jobs.csv", "line": 8}},
        {"code": "InternalError", "count": 1, "example": {
            "job": "img-b", "message": "The request processing has failed due to some unknown error.",
            "request_id": "req-b3", "source": "jobs.csv", "line": 3}},
    ]


def test_failure_example_is_the_first_job_when_none_has_a_request_id(tmp_path: Path) -> None:
    """Without RequestIds the example is the first failed job of the code, in journal order."""
    recs: list[Record] = [(r.RUN_START, None, {})]
    for name in ("img-x", "img-y"):
        recs += [attempt(name, 1, 2), (r.JOB_FAILED, name, {"code": "Transport.NotSent",
                                                            "message": f"refused {name}", "status": None})]
    example = json_status(write_journal(tmp_path / "j.jsonl", recs))["failures"][0]["example"]
    assert (example["job"], example["message"], example["request_id"]) == ("img-x", "refused img-x", None)


def test_last_run_start_end_stop_reason_and_exit_code(tmp_path: Path) -> None:
    """The last run's start and end times, stop reason, detail, exit code and its meaning are shown."""
    last = json_status(scenario(tmp_path))["last_run"]
    assert last == {"index": 2, "started": "2026-11-26T01:00:12.000Z", "ended": "2026-11-26T01:00:31.000Z",
                    "stop": "deadline", "detail": "time window reached; run again to resume",
                    "exit_code": 3, "exit_meaning": "stopped early and resumable",
                    "stats": {"rows": 12, "imported": 1}}


def test_last_run_without_an_end_is_reported_as_unfinished(tmp_path: Path) -> None:
    """A run killed before run.end has a start, and null end, stop and exit code."""
    journal = write_journal(tmp_path / "j.jsonl", [*RUN_1, (r.RUN_START, None, {}), attempt("img-z", 1, 2)])
    last = json_status(journal)["last_run"]
    assert (last["index"], last["started"], last["ended"], last["exit_code"]) == (
        2, "2026-11-26T01:00:12.000Z", None, None)
    text = CliRunner().invoke(status, ["--journal", str(journal)]).stdout
    assert "no end recorded (still running, or killed)" in text


def test_learned_rate_and_image_statuses(tmp_path: Path) -> None:
    """The learned rate and the image statuses (count, mean and max import seconds) are reported."""
    doc = json_status(scenario(tmp_path))
    assert doc["learned_rate"] == 7.5
    assert doc["image_statuses"] == [{"status": "Available", "count": 2, "mean_seconds": 26.25,
                                      "max_seconds": 42.5}]


def test_json_document_has_the_documented_keys(tmp_path: Path) -> None:
    """--json prints one document whose keys are those the help documents."""
    doc = json_status(scenario(tmp_path))
    assert list(doc) == ["schema", "journal", "records", "runs", "counts", "failures", "last_run",
                         "learned_rate", "image_statuses", "duplicates", "changed_since_imported"]
    assert list(doc["counts"]) == ["imported", "adopted", "existing", "done", "failed", "in_doubt",
                                   "pending", "invalid", "total"]
    assert (doc["schema"], doc["runs"]) == (1, 2)
    help_text = CliRunner().invoke(status, ["--help"]).stdout
    for key in (*doc, *doc["counts"], "request_id", "exit_meaning", "mean_seconds"):
        assert key in help_text


def test_empty_journal_reports_zeros_and_no_run(tmp_path: Path) -> None:
    """An empty journal is valid: every count zero, no last run, no learned rate."""
    doc = json_status(write_journal(tmp_path / "j.jsonl", []))
    assert set(doc["counts"].values()) == {0}
    assert (doc["last_run"], doc["learned_rate"], doc["failures"], doc["image_statuses"]) == (
        None, None, [], [])


def test_human_output_is_a_compact_table(tmp_path: Path) -> None:
    """Without --json: one line per state, one block per failure code, the last run, rate, statuses."""
    result = CliRunner().invoke(status, ["--journal", str(scenario(tmp_path))])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    for label, n in [("imported now", 2), ("adopted by reconcile", 1), ("skipped existing", 1),
                     ("failed", 3), ("in doubt", 1), ("pending", 1), ("invalid (last run)", 2),
                     ("total", 11)]:
        assert any(line.split() == [*label.split(), str(n)] for line in lines), label
    text = result.stdout
    assert "InvalidParameter.OSSObject" in text
    assert "job img-f (jobs.csv:8)" in text
    assert "RequestId req-b3" in text
    assert "stop: deadline (time window reached; run again to resume), exit code 3" in text
    assert "learned rate: 7.5 requests/s" in text
    assert "image statuses: Available 2 (mean 26.25s, max 42.5s)" in text


def test_missing_journal_is_a_usage_error_naming_the_path(tmp_path: Path) -> None:
    """A journal that does not exist exits 2 with a message naming the path."""
    missing = tmp_path / "nope.jsonl"
    result = CliRunner().invoke(status, ["--journal", str(missing)])
    assert result.exit_code == 2
    assert f"journal {missing} does not exist" in result.stderr


def test_corrupt_journal_line_exits_2_with_its_line_number(tmp_path: Path) -> None:
    """A corrupt line that is not the torn tail is an error (exit 2) naming file and line."""
    journal = write_journal(tmp_path / "j.jsonl", RUN_1)
    with journal.open("ab") as handle:
        handle.write(b"not json\n")
    result = CliRunner().invoke(status, ["--journal", str(journal)])
    assert result.exit_code == 2
    assert f"{journal}:{len(RUN_1) + 1}: not a journal record" in result.stderr


def test_status_reads_without_modifying_the_journal(tmp_path: Path) -> None:
    """status is read-only: the torn tail stays for the next run to repair, no lock file appears."""
    journal = scenario(tmp_path)
    before = journal.read_bytes()
    CliRunner().invoke(status, ["--journal", str(journal)])
    assert journal.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [journal.name]


def test_command_in_a_real_process(tmp_path: Path) -> None:
    """Run as a process: --json on stdout, exit 0; a missing journal exits 2."""
    code = "from pipeline.cli.status import status; status()"
    ok = subprocess.run([sys.executable, "-c", code, "--journal", str(scenario(tmp_path)), "--json"],
                        capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["counts"]["total"] == 11
    missing = subprocess.run([sys.executable, "-c", code, "--journal", str(tmp_path / "x.jsonl")],
                             capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 2
    assert "x.jsonl does not exist" in missing.stderr
