"""Input defects of issue #13: JSON null, duplicate keys, a file given twice, ';' CSV, the CJK block,
invalid rows journaled once, and no runtime dependency the package does not import."""

from __future__ import annotations

import io
import re
import tomllib
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.errors import JobListError
from pipeline.joblist.job import Job
from pipeline.joblist.readers import RawRow, read_stream
from pipeline.joblist.rules import job_rules
from pipeline.joblist.validate import InvalidRow, check_name, check_row, iter_rows
from tests.run_helpers import SimProcess, cli, journal_records, run_against, write_jobs

RULES = job_rules(load_config(None))
ROOT = Path(__file__).resolve().parent.parent
GOOD = {"ImageName": "img-1", "OSSBucket": "bucket", "OSSObject": "a.qcow2"}


def rows(data: bytes, fmt: str) -> list[RawRow]:
    return list(read_stream(io.BufferedReader(io.BytesIO(data)), f"list.{fmt}", fmt=fmt))  # type: ignore[arg-type]


def test_json_null_means_absent_and_the_default_applies() -> None:
    """A null optional field is left out, a null field with a default gets the default; nested
    objects, arrays, booleans and numbers stay errors."""
    job = check_row(RawRow("a.json", 2, {**GOOD, "OSVersion": None, "OSType": None,
                                         "DiskDeviceMapping": None, "LicenseType": None}), RULES)
    assert isinstance(job, Job), job
    params = dict(job.params)
    assert "OSVersion" not in params
    assert "LicenseType" not in params
    assert params["OSType"] == RULES.defaults["OSType"]
    for value in ({"a": 1}, ["x"], True, 7):
        bad = check_row(RawRow("a.json", 2, {**GOOD, "OSVersion": value}), RULES)
        assert isinstance(bad, InvalidRow)
        assert bad.problems[0].message.startswith("must be a string, not ")


def test_a_json_export_with_nulls_imports_every_row(tmp_path: Path) -> None:
    """`validate` over a JSON export whose empty optional fields are null: every row is valid."""
    jobs = tmp_path / "export.json"
    jobs.write_text("[" + ",".join(
        f'{{"ImageName": "img-{i}", "OSSBucket": "b", "OSSObject": "o{i}.qcow2", "OSVersion": null, '
        f'"Platform": null}}' for i in range(30)) + "]", encoding="utf-8")
    result = cli("validate", str(jobs))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "30 valid" in result.stdout + result.stderr


@pytest.mark.parametrize(("data", "fmt", "line"), [
    (b'[\n{"ImageName": "a",\n "OSSObject": "x",\n "OSSObject": "y"}\n]', "json", 4),
    (b'{"ImageName": "a", "ImageName": "b"}\n', "jsonl", 1),
])
def test_a_duplicate_json_key_is_an_error_naming_key_and_line(data: bytes, fmt: str, line: int) -> None:
    """Duplicate keys no longer let the last one win silently."""
    (row,) = rows(data, fmt)
    assert row.defect is not None
    assert re.search(rf"key '(OSSObject|ImageName)' appears twice .*line {line}\b", row.defect), row.defect


def test_the_same_file_listed_twice_says_so(tmp_path: Path) -> None:
    """Not 'already used on line 2' pointing at itself: 'listed twice', before any row is read."""
    write_jobs(tmp_path / "jobs.csv", 3)
    with pytest.raises(JobListError, match="listed twice"):
        next(iter_rows([str(tmp_path / "jobs.csv"), str(tmp_path / "jobs.csv")], RULES))
    result = cli("validate", str(tmp_path / "jobs.csv"), str(tmp_path / "." / "jobs.csv"))
    assert result.returncode == JobListError.exit_code
    assert "listed twice" in result.stderr + result.stdout
    assert "already used" not in result.stderr + result.stdout


def test_a_semicolon_delimited_csv_gets_a_delimiter_hint() -> None:
    with pytest.raises(JobListError, match="separated by semicolons"):
        rows(b"ImageName;OSSBucket;OSSObject\na;b;c\n", "csv")


@pytest.mark.parametrize("name", ["龦镜像", "img-\u9fa6", "\u9fffx", "a\u9fa5\u9fa6"])
def test_the_whole_cjk_unified_ideographs_block_is_accepted(name: str) -> None:
    """U+4E00-U+9FFF, not only up to U+9FA5."""
    assert check_name(name) is None


def test_a_name_with_9fa6_imports_into_the_simulator(tmp_path: Path) -> None:
    jobs, journal = tmp_path / "jobs.csv", tmp_path / "j.jsonl"
    jobs.write_text("ImageName,OSSBucket,OSSObject\n龦-image,b,o.qcow2\n", encoding="utf-8")
    with SimProcess() as sim:
        code, err = run_against(sim, jobs, journal)
        assert code == 0, err
        assert [image["ImageName"] for image in sim.images()] == ["龦-image"]


def test_invalid_rows_are_journaled_once_per_fingerprint(tmp_path: Path) -> None:
    """Run the same list three times: its invalid rows are journaled once; a row fixed or changed
    differently is journaled again."""
    jobs, journal = tmp_path / "jobs.csv", tmp_path / "j.jsonl"
    _, invalid = write_jobs(jobs, 20, invalid_every=5)
    with SimProcess() as sim:
        for _ in range(3):
            code, err = run_against(sim, jobs, journal, "--rate", "200")
            assert code == 1, err
        records = [rec for rec in journal_records(journal) if rec["event"] == "job.invalid"]
        assert len(records) == len(invalid) == 4
        text = jobs.read_text(encoding="utf-8").replace("windows95", "windows96")
        text = text.replace("9img", "8img")
        jobs.write_text(text, encoding="utf-8")
        code, err = run_against(sim, jobs, journal)
        assert code == 1, err
        records = [rec for rec in journal_records(journal) if rec["event"] == "job.invalid"]
        assert len(records) == 8


def test_every_runtime_dependency_is_imported_by_the_package() -> None:
    """A dependency no module imports (ijson was one) is dropped, not shipped."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "pipeline").rglob("*.py"))
    for requirement in project["dependencies"]:
        module = re.split(r"[<>=!\[ ;]", requirement, maxsplit=1)[0].replace("-", "_")
        assert re.search(rf"^\s*(import|from) {module}\b", source, re.M), requirement
