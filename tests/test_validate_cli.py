"""`ens-migrate validate`: problems on stdout, summary on stderr, exit 0 / 1 / 65 / 2."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
HEADER = ["ImageName", "OSSBucket", "OSSObject", "OSType", "ImageFormat", "DiskDeviceMapping"]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def mixed_catalog(path: Path) -> set[tuple[int, str]]:
    """Write 50 rows (BOM, CRLF, multi-line cells), 10 bad in ten ways; return their (line, field)."""
    bad_rows: list[tuple[list[str], str]] = [
        (["1abc", "b", "o", "", "", ""], "ImageName"),
        (["a" * 129, "b", "o", "", "", ""], "ImageName"),
        (["http://img", "b", "o", "", "", ""], "ImageName"),
        (["bad-os", "b", "o", "dos", "", ""], "OSType"),
        (["bad-format", "b", "o", "", "raw", ""], "ImageFormat"),
        (["no-source", "", "", "", "", ""], "OSSObject"),
        (["half-source", "b", "", "", "", ""], "OSSObject"),
        (["bad-mapping", "", "", "", "", "[{"], "DiskDeviceMapping"),
        (["ragged", "b", "o", "", "", "", "extra"], "row"),
        (["good-1", "b", "again", "", "", ""], "ImageName"),
    ]
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    expected: set[tuple[int, str]] = set()
    for n in range(50):
        line = out.getvalue().count("\n") + 1
        if n % 5 == 4:
            cells, field = bad_rows[n // 5]
            writer.writerow(cells)
            expected.add((line, field))
        elif n % 3 == 0:
            writer.writerow([f"镜像-good-{n}", "", "", "", "",
                             '[{"OSSBucket": "b", "OSSObject": "dir/disk, \\"1\\".qcow2"}]'])
        else:
            writer.writerow([f"good-{n}", "b", f"path/with spaces, commas\nand a newline {n}.qcow2",
                             "linux", "", ""])
    path.write_bytes(b"\xef\xbb\xbf" + out.getvalue().encode("utf-8"))
    return expected


def test_examples_are_valid(capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped example job lists validate cleanly: exit 0, nothing on stdout."""
    code, out, err = run(capsys, "validate", str(ROOT / "jobs/example.csv"), str(ROOT / "jobs/example.json"))
    assert (code, out) == (0, "")
    assert "rows checked" in err
    assert " 0 invalid" in err


def test_every_bad_row_is_reported_at_its_line_and_no_good_row_is(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In a BOM+CRLF CSV with 20% bad rows of ten kinds, exactly the bad rows are reported; exit 1."""
    path = tmp_path / "catalog.csv"
    expected = mixed_catalog(path)
    code, out, err = run(capsys, "validate", str(path))
    reported = set()
    for line in out.splitlines():
        source, number, field, _ = line.split(": ", 1)[0].rsplit(":", 1) + line.split(": ", 2)[1:]
        assert source == str(path)
        reported.add((int(number), field))
    assert code == 1
    assert reported == expected
    assert "50 rows checked: 40 valid, 10 invalid" in err


def test_json_output_is_one_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--format json prints one JSON document with every problem and the counts."""
    path = tmp_path / "catalog.csv"
    expected = mixed_catalog(path)
    code, out, _ = run(capsys, "validate", "--format", "json", str(path))
    document = json.loads(out)
    assert code == 1
    assert {(p["line"], p["field"]) for p in document["problems"]} == expected
    assert {k: document[k] for k in ("rows", "valid", "invalid", "error")} == {
        "rows": 50, "valid": 40, "invalid": 10, "error": None}


def test_config_rules_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--config widens or narrows what is valid."""
    jobs = tmp_path / "a.jsonl"
    row = {"ImageName": "img-1", "OSSBucket": "b", "OSSObject": "o", "OSSRegion": "cn-hangzhou"}
    jobs.write_text(json.dumps(row) + "\n", encoding="utf-8")
    settings = tmp_path / "settings.toml"
    settings.write_text('[rules]\nOSSRegion = ["cn-hangzhou"]\n', encoding="utf-8")
    assert run(capsys, "validate", str(jobs))[0] == 1
    assert run(capsys, "validate", "--config", str(settings), str(jobs))[0] == 0


@pytest.mark.parametrize(("name", "data", "reason"), [
    ("a.csv", b"ImageName\nimg-1\ncaf\xe9\n", "a.csv:3: not valid UTF-8 at byte offset 19"),
    ("a.csv", "ImageName\nimg-1\n".encode("utf-16"), "a.csv:1: the file is UTF-16"),
    ("a.csv", b"ImageName\nimg\x00-1\n", "a.csv:2: NUL byte at byte offset 13"),
    ("a.csv", b"", "a.csv: empty file"),
    ("a.csv", b"ImageName,Colour\n", "a.csv:1: unknown column 'Colour'"),
    ("a.json", b'[\n{"ImageName": "img-1"},\n{"ImageName" "x"}\n]', "a.json:3: JSON syntax error"),
    ("a.jsonl", b'{"ImageName": "img-1"}\n{\n', "a.jsonl:2: JSON syntax error"),
    ("a.txt", b"ImageName\n", "a.txt: unknown job list type '.txt'"),
])
def test_unreadable_job_list_exits_65(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, data: bytes, reason: str) -> None:
    """A file that cannot be read as a job list exits 65 with FILE:LINE: reason on stderr."""
    (tmp_path / name).write_bytes(data)
    code, _, err = run(capsys, "validate", str(tmp_path / name))
    assert code == 65
    assert f"ens-migrate: error: {tmp_path}/{reason}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("name", ["missing.csv", "."])
def test_missing_file_or_directory_exits_65(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    """A job list path that is missing, or a directory, exits 65."""
    path = tmp_path / "d.csv" if name == "." else tmp_path / name
    if name == ".":
        path.mkdir()
    assert run(capsys, "validate", str(path))[0] == 65


def test_problems_before_an_unreadable_file_are_still_printed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Validation stops at the unreadable file, after printing what it found before it."""
    (tmp_path / "a.csv").write_text("ImageName,OSSBucket,OSSObject\n1bad,b,o\n", encoding="utf-8")
    (tmp_path / "b.json").write_text("[oops]", encoding="utf-8")
    code, out, err = run(capsys, "validate", "--format", "json", str(tmp_path / "a.csv"),
                         str(tmp_path / "b.json"))
    document = json.loads(out)
    assert code == 65
    assert [p["line"] for p in document["problems"]] == [2]
    assert document["error"]["source"] == str(tmp_path / "b.json")
    assert "stopped at the unreadable file" in err


@pytest.mark.parametrize("args", [
    ["validate"], ["validate", "--format", "xml", "a.csv"], ["validate", "--no-such-flag", "a.csv"]])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    """Missing JOBS or a bad option is a usage error: exit 2."""
    assert run(capsys, *args)[0] == 2


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unusable --config file exits 2 and says which file and what to fix."""
    (tmp_path / "s.toml").write_text("[rules]\nColour = ['red']\n", encoding="utf-8")
    code, _, err = run(capsys, "validate", "--config", str(tmp_path / "s.toml"),
                       str(ROOT / "jobs/example.csv"))
    assert code == 2
    assert "s.toml: [rules] has unknown key 'Colour'" in err


def test_real_process_exit_codes_and_no_traceback(tmp_path: Path) -> None:
    """`python -m pipeline validate` exits 65 for a Latin-1 file, printing no traceback."""
    path = tmp_path / "latin1.csv"
    path.write_bytes("ImageName,OSSBucket,OSSObject\ncafé,b,o\n".encode("latin-1"))
    proc = subprocess.run([sys.executable, "-m", "pipeline", "validate", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 65
    assert "latin1.csv:2: not valid UTF-8 at byte offset 33 (byte 0xE9)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_real_process_reads_stdin() -> None:
    """`-` reads the job list from standard input; the format is sniffed."""
    data = '[{"ImageName": "镜像-1", "OSSBucket": "b", "OSSObject": "o"}, {"ImageName": "x"}]'
    proc = subprocess.run([sys.executable, "-m", "pipeline", "validate", "-"], cwd=ROOT, input=data,
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "-:1: ImageName: 'x' is 1 character long; use 2 to 128",
        "-:1: OSSObject: no image source; give OSSBucket and OSSObject, or DiskDeviceMapping"]
