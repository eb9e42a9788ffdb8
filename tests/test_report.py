"""`ens-migrate report`: the per-job CSV, and the failed-only file that is a job list for `run`."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pipeline.cli.report import report
from pipeline.joblist.job import PARAMETERS, Job
from pipeline.joblist.readers import read_stream
from pipeline.joblist.rules import JobRules
from pipeline.joblist.validate import check_row, iter_rows
from pipeline.journal import records as r
from pipeline.journal.ledger import JobLedger, JobState, Ledger
from pipeline.report.completion import OUTCOME_COLUMNS, failed_rows, to_csv
from tests.test_status import RUN_1, Record, params, scenario, write_journal


def run_report(journal: Path, out: Path, *extra: str) -> Result:
    result = CliRunner().invoke(report, ["--journal", str(journal), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return result


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def full_report(tmp_path: Path) -> dict[str, dict[str, str]]:
    """The scenario's report, rows by ImageName (invalid rows by Source:Line)."""
    out = tmp_path / "report.csv"
    run_report(scenario(tmp_path), out)
    return {row["ImageName"] or f"{row['Source']}:{row['Line']}": row for row in read_csv(out)}


def test_header_is_the_job_columns_then_the_outcome_columns(tmp_path: Path) -> None:
    """The header lists the ImportImage parameters in PARAMETERS order, then the outcome columns."""
    out = tmp_path / "report.csv"
    run_report(scenario(tmp_path), out)
    with out.open(encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle))
    assert header == [*PARAMETERS, "State", "ImageId", "Code", "Message", "HttpStatus", "RequestIds",
                      "Attempts", "FirstSeen", "LastSeen", "Source", "Line", "ImageStatus",
                      "ImportSeconds"]


def test_failed_job_row_has_the_error_and_every_attempts_request_id(tmp_path: Path) -> None:
    """A job failed after retries: its parameters, code, message, HTTP status, all RequestIds by ';'."""
    row = full_report(tmp_path)["img-b"]
    assert {k: row[k] for k in params("img-b")} == params("img-b")
    assert {k: row[k] for k in OUTCOME_COLUMNS} == {
        "State": "failed", "ImageId": "", "Code": "InternalError",
        "Message": "The request processing has failed due to some unknown error.", "HttpStatus": "500",
        "RequestIds": "req-b1;req-b2;req-b3", "Attempts": "3", "FirstSeen": "2026-11-26T01:00:05.000Z",
        "LastSeen": "2026-11-26T01:00:10.000Z", "Source": "jobs.csv", "Line": "3", "ImageStatus": "",
        "ImportSeconds": ""}


def test_imported_job_row_has_its_image_id_status_and_import_time(tmp_path: Path) -> None:
    """An imported job shows its ImageId, no error, and the image status and seconds seen later."""
    row = full_report(tmp_path)["img-a"]
    assert {k: row[k] for k in OUTCOME_COLUMNS} == {
        "State": "imported", "ImageId": "m-a", "Code": "", "Message": "", "HttpStatus": "",
        "RequestIds": "req-a1", "Attempts": "1", "FirstSeen": "2026-11-26T01:00:03.000Z",
        "LastSeen": "2026-11-26T01:00:26.000Z", "Source": "jobs.csv", "Line": "2",
        "ImageStatus": "Available", "ImportSeconds": "42.5"}


def test_every_current_job_has_one_row_in_journal_order(tmp_path: Path) -> None:
    """One row per job; an old run's invalid row fixed since is left out; in doubt and pending shown."""
    rows = full_report(tmp_path)
    assert list(rows) == ["jobs.csv:9", "img-a", "img-b", "jobs.csv:10", "img-c", "img-d", "img-e",
                          "img-f", "img-g", "img-h", "img-i"]
    assert [rows[k]["State"] for k in ("img-c", "img-g", "img-h")] == ["imported", "in_doubt", "pending"]


def test_invalid_row_has_its_problems_and_place_but_no_parameters(tmp_path: Path) -> None:
    """An invalid row of the last run: no parameters, State invalid, its problems, source and line."""
    row = full_report(tmp_path)["jobs.csv:10"]
    assert all(row[k] == "" for k in PARAMETERS)
    assert (row["State"], row["Code"], row["Message"]) == (
        "invalid", "InvalidRow", "ImageName: '10-new-bad' must start with a letter")


def test_job_without_kept_parameters_is_named_by_its_key(tmp_path: Path) -> None:
    """A job the journal holds no parameters for (skipped as existing) still shows its ImageName."""
    row = full_report(tmp_path)["img-d"]
    assert (row["ImageName"], row["ComputeType"], row["State"], row["ImageId"]) == (
        "img-d", "", "imported", "m-d")


def test_failed_only_holds_the_failed_jobs_with_only_job_columns(tmp_path: Path) -> None:
    """--failed-only: the header is PARAMETERS, the rows are the failed jobs' parameters."""
    out = tmp_path / "failed.csv"
    run_report(scenario(tmp_path), out, "--failed-only")
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == list(PARAMETERS)
    assert [dict(zip(PARAMETERS, row, strict=True)) for row in rows[1:]] == [
        {p: params(name).get(p, "") for p in PARAMETERS} for name in ("img-b", "img-e", "img-f")]


def test_failed_only_names_the_invalid_rows_left_out_on_stderr(tmp_path: Path) -> None:
    """Invalid rows cannot be in a job list: stderr counts them and says to fix the source list."""
    result = run_report(scenario(tmp_path), tmp_path / "failed.csv", "--failed-only")
    assert "wrote 3 failed jobs" in result.stderr
    assert "2 invalid rows of the last run left out" in result.stderr
    assert "fix them in the source job list" in result.stderr
    assert result.stdout == ""


TRICKY_CSV = [
    ["ImageName", "ComputeType", "OSSBucket", "OSSObject", "OSType", "ImageFormat", "Architecture",
     "OSVersion", "DiskDeviceMapping"],
    ["镜像-centos7", "ens_vm", "bkt", "centos/7.9/基础镜像, 2024 \"LTS\".qcow2", "linux", "qcow2",
     "x86_64", "7.9", ""],
    ["multi-line", "ens_vm", "bkt", "dir/line one\nline two\r\nthree.qcow2", "linux", "qcow2", "x86_64",
     "", '[{"OSSBucket":"数据盘","OSSObject":"d1, \\"x\\".raw","OSSRegion":"cn-beijing"}]'],
    ["plain", "ens_vm", "bkt", "ok.qcow2", "linux", "qcow2", "x86_64", "", ""],
]


def test_failed_only_file_round_trips_as_a_job_list(tmp_path: Path) -> None:
    """Commas, quotes, newlines, CJK and DiskDeviceMapping come back as the same jobs, same fingerprints."""
    source = tmp_path / "jobs.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(TRICKY_CSV)
    jobs = [j for j in iter_rows([str(source)], JobRules()) if isinstance(j, Job)]
    assert len(jobs) == 3
    recs: list[Record] = [(r.RUN_START, None, {})]
    for job in jobs[:2]:
        recs += [(r.JOB_ATTEMPT, job.name, {"fp": job.fingerprint, "attempt": 1, "source": job.source,
                                            "line": job.line, "params": job.query()}),
                 (r.JOB_FAILED, job.name, {"code": "NoPermission", "message": "m", "status": 403})]
    job = jobs[2]
    recs += [(r.JOB_ATTEMPT, job.name, {"fp": job.fingerprint, "attempt": 1, "params": job.query()}),
             (r.JOB_IMPORTED, job.name, {"image_id": "m-1", "request_id": "q", "via": "import"})]
    out = tmp_path / "failed.csv"
    run_report(write_journal(tmp_path / "j.jsonl", recs), out, "--failed-only")
    again = list(iter_rows([str(out)], JobRules()))
    assert [(j.params, j.fingerprint) for j in again if isinstance(j, Job)] == [
        (j.params, j.fingerprint) for j in jobs[:2]]
    assert len(again) == 2
    assert read_csv(out)[1]["DiskDeviceMapping"] == (
        '[{"OSSBucket":"数据盘","OSSObject":"d1, \\"x\\".raw","OSSRegion":"cn-beijing"}]')


# Table-driven, not hypothesis: hypothesis writes .hypothesis/constants into the checkout, which
# pytest's norecursedirs does not skip (a collection warning, an error under filterwarnings).
NASTY_VALUES = [
    "a,b", 'say "hi"', '"', '""', "line\nbreak", "crlf\r\nend", "lone\rcr", "trailing\n",
    " padded ", "\ttab", "镜像/基础, 版本\"一\"", "emoji 🚀", "\ufeffbom", "\u2028sep\x85nel",
    "=SUM(A1)", "back\\slash", "semi;colon", "'quote",
]


@pytest.mark.parametrize("value", NASTY_VALUES)
def test_any_parameter_text_survives_the_failed_only_round_trip(value: str) -> None:
    """Whatever text a parameter holds, the failed-only CSV reads back to exactly that text."""
    kept = {**params("img-x", value), "OSVersion": value, "OSSBucket": value}
    ledger = Ledger(jobs={"img-x": JobLedger(state=JobState.FAILED, params=kept)})
    text, count = to_csv(failed_rows(ledger))
    stream = io.BufferedReader(io.BytesIO(text.encode("utf-8")))
    raw = list(read_stream(stream, "f.csv", fmt="csv"))
    assert count == len(raw) == 1
    job = check_row(raw[0], JobRules())
    assert isinstance(job, Job)
    assert job.query() == {p: kept[p] for p in PARAMETERS if p in kept}


def test_report_file_is_private_and_replaced_atomically(tmp_path: Path) -> None:
    """The report is mode 0600 even over an older world-readable file; no temporary file remains."""
    out = tmp_path / "out" / "report.csv"
    out.parent.mkdir()
    out.write_text("old", encoding="utf-8")
    out.chmod(0o644)
    run_report(scenario(tmp_path), out)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert os.listdir(out.parent) == ["report.csv"]
    assert out.read_text(encoding="utf-8").startswith("ImageName,")


def test_parameters_outside_the_job_columns_never_reach_the_report(tmp_path: Path) -> None:
    """Only PARAMETERS are written: a stray key in the journal's params (say, a secret) is dropped."""
    secret = "SuperSecretValue0123456789"
    kept = {**params("img-s"), "AccessKeySecret": secret}
    recs: list[Record] = [(r.RUN_START, None, {}),
                          (r.JOB_ATTEMPT, "img-s", {"fp": "f", "attempt": 1, "params": kept}),
                          (r.JOB_FAILED, "img-s", {"code": "Forbidden", "message": "no", "status": 403})]
    journal = write_journal(tmp_path / "j.jsonl", recs)
    for extra in ((), ("--failed-only",)):
        out = tmp_path / f"r{len(extra)}.csv"
        result = run_report(journal, out, *extra)
        assert secret not in out.read_text(encoding="utf-8")
        assert secret not in result.output


def test_failed_job_without_parameters_is_left_out_with_a_message(tmp_path: Path) -> None:
    """A failed job whose parameters the journal lacks cannot be listed; stderr says so."""
    recs: list[Record] = [(r.RUN_START, None, {}),
                          (r.JOB_FAILED, "img-old", {"code": "Forbidden", "message": "no", "status": 403})]
    out = tmp_path / "failed.csv"
    result = run_report(write_journal(tmp_path / "j.jsonl", recs), out, "--failed-only")
    assert read_csv(out) == []
    assert "1 failed job(s) left out: the journal holds no parameters" in result.stderr


def test_missing_journal_is_a_usage_error_naming_the_path(tmp_path: Path) -> None:
    """A journal that does not exist exits 2 naming it, and writes no report."""
    missing = tmp_path / "nope.jsonl"
    result = CliRunner().invoke(report, ["--journal", str(missing), "--out", str(tmp_path / "o.csv")])
    assert result.exit_code == 2
    assert f"journal {missing} does not exist" in result.stderr
    assert not (tmp_path / "o.csv").exists()


def test_unwritable_output_exits_2_naming_the_file(tmp_path: Path) -> None:
    """An --out that cannot be created (its directory is a file) exits 2 with the path."""
    journal = write_journal(tmp_path / "j.jsonl", RUN_1)
    (tmp_path / "afile").write_text("", encoding="utf-8")
    out = tmp_path / "afile" / "report.csv"
    result = CliRunner().invoke(report, ["--journal", str(journal), "--out", str(out)])
    assert result.exit_code == 2
    assert f"cannot write {out}" in result.stderr


def test_parameter_kept_as_json_is_written_as_json_text(tmp_path: Path) -> None:
    """A parameter kept as a JSON array (not its string) is written as compact JSON text."""
    mapping = [{"OSSBucket": "b", "OSSObject": "d.raw"}]
    kept = {**params("img-m"), "DiskDeviceMapping": mapping}
    recs: list[Record] = [(r.JOB_ATTEMPT, "img-m", {"fp": "f", "attempt": 1, "params": kept})]
    out = tmp_path / "r.csv"
    run_report(write_journal(tmp_path / "j.jsonl", recs), out)
    assert json.loads(read_csv(out)[0]["DiskDeviceMapping"]) == mapping
    assert read_csv(out)[0]["DiskDeviceMapping"] == '[{"OSSBucket":"b","OSSObject":"d.raw"}]'
