"""Bad input: every broken job list gets a one-line message naming FILE[:LINE], the documented exit
code (65: the file is not a job list; 1: some rows are invalid), no traceback, and no invalid row
is ever sent (the simulator's counters are the truth).

The corpus is committed under tests/data/bad/ (written by tests/data/make_bad_corpus.py); cases
too big or too odd to commit (a 1 MB field, a directory, an unreadable file) are made in tmp_path.
The CLI runs in a forked child of the test process (``python -m pipeline`` minus the interpreter
start-up, so the 70-odd invocations stay fast); one test runs the real subprocess to show both agree.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.data.make_bad_corpus import BAD, CASES, Case
from tests.run_helpers import SimProcess, cli, cli_forked

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    """One simulator for the module; each test measures what it sent by difference."""
    with SimProcess() as process:
        yield process


def _accepted(sim: SimProcess) -> Counter[str]:
    return Counter(sim.stats()["accepted_by_name"])


def _where(path: Path, line: int | None) -> str:
    return f"{path}:{line}:" if line is not None else f"{path}:"


def _message_line(text: str, where: str, needle: str) -> str | None:
    """The one line that names the place and the problem, or None."""
    for line in text.splitlines():
        if where in line and needle.lower() in line.lower():
            return line
    return None


def test_the_committed_corpus_is_what_the_generator_writes() -> None:
    """tests/data/bad/ holds exactly the generator's files, byte for byte, and at least 30."""
    on_disk = {p.name: p.read_bytes() for p in BAD.iterdir() if p.is_file()}
    assert on_disk == {case.name: case.content for case in CASES}
    assert len(on_disk) >= 30


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_validate_names_the_place_and_exits_with_the_documented_code(tmp_path: Path, case: Case) -> None:
    """``validate`` on a broken list: one line with FILE:LINE and the problem, exit 65 or 1."""
    path = BAD / case.name
    result = cli_forked("validate", str(path))
    assert result.returncode == case.exit_code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    found = _message_line(result.stdout + result.stderr, _where(path, case.line), case.needle)
    assert found is not None, (result.stdout, result.stderr)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_run_names_the_place_and_never_sends_an_invalid_row(tmp_path: Path, sim: SimProcess,
                                                            case: Case) -> None:
    """``run`` on a broken list: the same one-line message and exit code; only the valid rows are
    imported (row-level) and nothing after an unreadable spot is sent (file-level)."""
    path = BAD / case.name
    before = _accepted(sim)
    result = cli_forked("run", str(path), "--endpoint", sim.url, "--journal",
                        str(tmp_path / "j.jsonl"), "--rate", "200", "--quiet")
    sent = _accepted(sim) - before
    assert result.returncode == case.exit_code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert _message_line(result.stderr, _where(path, case.line), case.needle) is not None, result.stderr
    if case.exit_code == 1:
        assert sent == Counter(case.valid)
    else:
        # Rows before the unreadable spot may go (the list is streamed); nothing at or after it.
        assert set(sent) <= {"ok-img"}, sent


def _huge_field_csv(tmp_path: Path) -> Path:
    path = tmp_path / "huge_field.csv"
    path.write_text("ImageName,OSSBucket,OSSObject\r\nok-img,b,o.qcow2\r\nok-two,b," + "o" * (1 << 20)
                    + ".qcow2\r\n", encoding="utf-8")
    return path


def _huge_field_json(tmp_path: Path) -> Path:
    path = tmp_path / "huge_field.json"
    path.write_text('[\n{"ImageName": "ok-img", "OSSBucket": "b", "OSSObject": "o"},\n'
                    '{"ImageName": "ok-two", "OSSBucket": "b", "OSSObject": "' + "o" * (1 << 20) + '"}\n]\n',
                    encoding="utf-8")
    return path


def _long_name_csv(tmp_path: Path) -> Path:
    path = tmp_path / "long_name.csv"
    path.write_text("ImageName,OSSBucket,OSSObject\r\nok-img,b,o.qcow2\r\n" + "n" * 100_000 + ",b,o\r\n",
                    encoding="utf-8")
    return path


def _huge_cell_csv(tmp_path: Path) -> Path:
    path = tmp_path / "huge_cell.csv"
    path.write_text("ImageName,OSSBucket,OSSObject\r\nok-img,b,o.qcow2\r\n" + "n" * 900_000 + ",b,o\r\n",
                    encoding="utf-8")
    return path


def _directory(tmp_path: Path) -> Path:
    path = tmp_path / "a_directory.csv"
    path.mkdir()
    return path


def _missing(tmp_path: Path) -> Path:
    return tmp_path / "no_such_list.csv"


def _io_error(tmp_path: Path) -> Path:
    # Reading /proc/self/mem at offset 0 fails with EIO even for root: an unreadable file.
    path = tmp_path / "io_error.csv"
    path.symlink_to("/proc/self/mem")
    return path


GENERATED = [
    pytest.param(_huge_field_csv, 65, 3, "longer than", id="1MB-field-csv"),
    pytest.param(_huge_field_json, 65, 3, "larger than", id="1MB-field-json"),
    pytest.param(_long_name_csv, 1, 3, "100000 characters", id="100KB-name-row"),
    pytest.param(_huge_cell_csv, 65, 3, "cell is longer than", id="900KB-cell-csv"),
    pytest.param(_directory, 65, None, "directory", id="directory"),
    pytest.param(_missing, 65, None, "No such file", id="missing-file"),
    pytest.param(_io_error, 65, None, "cannot read", id="io-error"),
]


@pytest.mark.parametrize(("make", "code", "line", "needle"), GENERATED)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_generated_bad_inputs(tmp_path: Path, sim: SimProcess, make: object, code: int,
                              line: int | None, needle: str, command: str) -> None:
    """Huge fields, a directory, a missing or unreadable file: one short line naming the place,
    exit 65 (or 1 for a too-long name row), no traceback, nothing but the valid rows sent."""
    assert callable(make)
    path: Path = make(tmp_path)
    before = _accepted(sim)
    extra = ("--endpoint", sim.url, "--journal", str(tmp_path / "j.jsonl"), "--quiet")
    if command == "validate":
        extra = ()
    result = cli_forked(command, str(path), *extra)
    sent = _accepted(sim) - before
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    found = _message_line(result.stdout + result.stderr, _where(path, line), needle)
    assert found is not None, (result.stdout[:2000], result.stderr[:2000])
    assert len(found) < 600, "the message must not echo a megabyte-sized value"
    assert set(sent) <= {"ok-img"}


def test_an_unreadable_file_by_permissions(tmp_path: Path, sim: SimProcess) -> None:
    """chmod 000: validate and run exit 65 naming the file (skipped as root, who reads it anyway)."""
    path = tmp_path / "secret.csv"
    path.write_text("ImageName,OSSBucket,OSSObject\r\nok-img,b,o\r\n", encoding="utf-8")
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip("running as root: chmod 000 does not stop reading (the io-error case covers "
                    "an unreadable file)")
    for args in (("validate",), ("run", "--endpoint", sim.url, "--journal", str(tmp_path / "j.jsonl"))):
        result = cli_forked(args[0], str(path), *args[1:])
        assert result.returncode == 65
        assert "Permission denied" in result.stderr


def test_the_real_process_agrees_with_the_forked_harness(tmp_path: Path, sim: SimProcess) -> None:
    """`python -m pipeline` itself: a Latin-1 file exits 65 with the line, a bad row exits 1 with the
    line, both without a traceback, and the bad row is not sent."""
    latin1 = cli("validate", str(BAD / "latin1.csv"))
    assert latin1.returncode == 65
    assert f"{BAD / 'latin1.csv'}:2:" in latin1.stderr
    before = _accepted(sim)
    bad_row = cli("run", str(BAD / "bom_then_bad_row.csv"), "--endpoint", sim.url, "--journal",
                  str(tmp_path / "j.jsonl"), "--quiet")
    assert bad_row.returncode == 1, bad_row.stderr
    assert f"{BAD / 'bom_then_bad_row.csv'}:3: ImageName:" in bad_row.stderr
    assert "Traceback" not in latin1.stderr + bad_row.stderr
    assert _accepted(sim) - before == Counter({"ok-img": 1})
