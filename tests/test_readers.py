"""Job-list readers: CSV, JSON array and JSON Lines stream rows with their file and starting line."""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import ijson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from pipeline.errors import JobListError
from pipeline.joblist.job import PARAMETERS
from pipeline.joblist.readers import RawRow, read_job_list, read_stream

# Keep Hypothesis' cache out of the work tree: pytest warns about a .hypothesis directory there
# (norecursedirs replaces the defaults) and filterwarnings=error turns that into a collection error.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "ens-migrate-hypothesis")


def rows_of(path: Path) -> list[RawRow]:
    return list(read_job_list(str(path)))


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


class ChunkStream(io.RawIOBase):
    """A raw stream fed by a (possibly endless) generator of byte chunks; counts chunks taken."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""
        self.taken = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._pending:
            self._pending = next(self._chunks, b"")
            self.taken += 1
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


# --- CSV ---------------------------------------------------------------------------------------

def test_csv_header_any_subset_any_order(tmp_path: Path) -> None:
    """Columns are matched by header name, in whatever order and subset the file uses."""
    path = write(tmp_path, "a.csv", b"OSSObject,ImageName\nobj.qcow2,img-1\n")
    assert rows_of(path) == [RawRow(str(path), 2, {"OSSObject": "obj.qcow2", "ImageName": "img-1"})]


def test_csv_bom_crlf_and_blank_lines(tmp_path: Path) -> None:
    """A UTF-8 BOM is dropped, CRLF ends are accepted, and blank lines are skipped but counted."""
    path = write(tmp_path, "a.csv", b"\xef\xbb\xbfImageName,OSType\r\n\r\nimg-1,linux\r\n,\r\nimg-2,\r\n")
    assert [(r.line, r.values) for r in rows_of(path)] == [
        (3, {"ImageName": "img-1", "OSType": "linux"}), (5, {"ImageName": "img-2", "OSType": ""})]


def test_csv_quoted_fields_span_lines_and_keep_the_start_line(tmp_path: Path) -> None:
    """A quoted cell may hold commas, doubled quotes and newlines; the row keeps its first line."""
    path = write(tmp_path, "a.csv", b'ImageName,OSSObject\nimg-1,"a, ""b""\nc"\nimg-2,d\n')
    assert [(r.line, r.values["OSSObject"]) for r in rows_of(path)] == [(2, 'a, "b"\nc'), (4, "d")]


def test_csv_source_is_the_name_the_user_gave(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows carry the path exactly as given, relative or not."""
    write(tmp_path, "a.csv", b"ImageName\nimg-1\n")
    monkeypatch.chdir(tmp_path)
    assert [r.source for r in read_job_list("./a.csv")] == ["./a.csv"]


def test_csv_ragged_row_is_a_row_defect(tmp_path: Path) -> None:
    """A row with more cells than the header is reported on its line; reading goes on."""
    path = write(tmp_path, "a.csv", b"ImageName,OSSObject\nimg-1,a,b\nimg-2,c\n")
    first, second = rows_of(path)
    assert (first.line, first.defect) == (2, "3 cells but the header has 2 columns: quote cells that "
                                              "contain commas")
    assert (second.line, second.defect, second.values["ImageName"]) == (3, None, "img-2")


def test_csv_short_row_leaves_missing_cells_empty(tmp_path: Path) -> None:
    """A row with fewer cells than the header reads the missing ones as absent."""
    path = write(tmp_path, "a.csv", b"ImageName,OSSObject,OSType\nimg-1\n")
    assert rows_of(path)[0].values == {"ImageName": "img-1"}


@pytest.mark.parametrize(("data", "reason"), [
    (b"ImageName,Colour\n", "unknown column 'Colour'; valid columns: " + ", ".join(PARAMETERS)),
    (b"ImageNmae,OSType\n", "unknown column 'ImageNmae' (did you mean 'ImageName'?); valid columns: "
     + ", ".join(PARAMETERS)),
    (b"OSType,OSSBucket\n", "the header row has no ImageName column; the first row must name the "
     "columns, from: " + ", ".join(PARAMETERS)),
    (b"ImageName,OSType,OSType\n", "column 'OSType' appears twice in the header"),
])
def test_csv_bad_header_is_a_file_error(tmp_path: Path, data: bytes, reason: str) -> None:
    """An unknown, misspelt, duplicated or missing-ImageName header refuses the whole file."""
    path = write(tmp_path, "a.csv", data)
    with pytest.raises(JobListError) as info:
        rows_of(path)
    assert (info.value.line, info.value.reason) == (1, reason)


@pytest.mark.parametrize("data", [b"", b"\n\r\n  \n", b"\xef\xbb\xbf"])
def test_csv_without_header_is_a_file_error(tmp_path: Path, data: bytes) -> None:
    """An empty file (or only blank lines) has no header row."""
    with pytest.raises(JobListError, match="empty file: expected a header row"):
        rows_of(write(tmp_path, "a.csv", data))


def test_csv_unterminated_quote_is_a_file_error_at_the_row(tmp_path: Path) -> None:
    """An opening quote never closed is a CSV syntax error reported at the row where it starts."""
    path = write(tmp_path, "a.csv", b'ImageName,OSSObject\nimg-1,ok\nimg-2,"open\nmore\n')
    with pytest.raises(JobListError, match="CSV syntax") as info:
        rows_of(path)
    assert info.value.line == 3


cell = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=12)
name_cell = st.text(st.sampled_from("ab,\"\n\r 镜像-:é"), min_size=1, max_size=12).filter(
    lambda s: not s.isspace())


@settings(max_examples=150, deadline=None, database=None)
@given(st.lists(st.tuples(name_cell, cell, cell), max_size=8), st.booleans())
def test_csv_round_trips_whatever_csv_writer_quotes(rows: list[tuple[str, str, str]], crlf: bool) -> None:
    """Rows written by csv.writer read back identical, each at the physical line where it starts."""
    if not crlf:  # csv.writer quotes a lone CR only when it is part of the line terminator
        rows = [tuple(c.replace("\r", "") for c in row) for row in rows]  # type: ignore[misc]
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(["ImageName", "OSSObject", "OSVersion"])
    expected = []
    for row in rows:
        line = out.getvalue().count("\n") + 1
        writer.writerow(row)
        expected.append((line, dict(zip(("ImageName", "OSSObject", "OSVersion"), row, strict=True))))
    stream = io.BufferedReader(io.BytesIO(out.getvalue().encode("utf-8")))
    assert [(r.line, dict(r.values)) for r in read_stream(stream, "x.csv", fmt="csv")] == expected


# --- file-level problems shared by every format -------------------------------------------------

@pytest.mark.parametrize("name", ["a.csv", "a.json", "a.jsonl"])
def test_latin1_file_names_the_byte_offset(tmp_path: Path, name: str) -> None:
    """A byte that is not UTF-8 is a file error giving its line and byte offset."""
    body = b'{"ImageName": "x"}\n{"ImageName": "caf\xe9"}'
    if name == "a.csv":
        body = b"ImageName\nimg-1\ncaf\xe9\n"
    if name == "a.json":
        body = b"[\n" + body.replace(b"\n", b",\n") + b"\n]"
    with pytest.raises(JobListError, match=r"not valid UTF-8 at byte offset \d+ \(byte 0xE9\)") as info:
        rows_of(write(tmp_path, name, body))
    assert info.value.line == 3 if name != "a.jsonl" else 2


@pytest.mark.parametrize("name", ["a.csv", "a.json", "a.jsonl"])
def test_utf16_file_is_refused(tmp_path: Path, name: str) -> None:
    """A UTF-16 file (with its byte order mark) is refused with the fix."""
    with pytest.raises(JobListError, match=r"UTF-16.*save it as UTF-8"):
        rows_of(write(tmp_path, name, "ImageName\nimg-1\n".encode("utf-16")))


@pytest.mark.parametrize("name", ["a.csv", "a.json", "a.jsonl"])
def test_nul_byte_is_refused_with_its_offset(tmp_path: Path, name: str) -> None:
    """A NUL byte (binary file, UTF-16 without BOM) is a file error naming the offset."""
    with pytest.raises(JobListError, match="NUL byte at byte offset 1"):
        rows_of(write(tmp_path, name, "[I".encode("utf-16-le")))


def test_directory_is_refused(tmp_path: Path) -> None:
    """A directory named like a job list is a file error, not a traceback."""
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(JobListError, match="is a directory"):
        rows_of(tmp_path / "d.csv")


def test_missing_file_is_refused(tmp_path: Path) -> None:
    """A path that does not exist is a file error saying it cannot be opened."""
    with pytest.raises(JobListError, match="cannot open: No such file"):
        rows_of(tmp_path / "nope.csv")


def test_unknown_extension_is_refused(tmp_path: Path) -> None:
    """The format comes from the extension; anything else names the accepted ones."""
    with pytest.raises(JobListError, match=r"unknown job list type '\.txt'.*\.csv, \.json, \.jsonl"):
        rows_of(write(tmp_path, "a.txt", b"ImageName\n"))


# --- JSON array ----------------------------------------------------------------------------------

def test_json_array_rows_start_where_their_object_starts(tmp_path: Path) -> None:
    """Each element keeps the line of its opening brace, across nested and tricky strings."""
    data = ('\ufeff[\n  {"ImageName": "a\\"}]{[", "x": [1, {"y": "]\\n"}]},\n\n'
            '  {\n   "ImageName": "镜像"\n  }, {"ImageName": "c"}\n]\n').encode()
    path = write(tmp_path, "a.json", data)
    assert [(r.line, r.values["ImageName"]) for r in rows_of(path)] == [(2, 'a"}]{['), (4, "镜像"), (6, "c")]


def test_json_non_object_element_is_a_row_defect(tmp_path: Path) -> None:
    """An element that is not an object is reported on its line; the others still read."""
    path = write(tmp_path, "a.json", b'[\n"img-1",\n[1],\n{"ImageName": "ok"}\n]')
    assert [(r.line, r.defect) for r in rows_of(path)] == [
        (2, 'element 0 is a string, not an object like {"ImageName": "..."}'),
        (3, 'element 1 is an array, not an object like {"ImageName": "..."}'), (4, None)]


def test_json_wrong_value_types_are_kept_for_the_rules(tmp_path: Path) -> None:
    """Numbers, null and objects are passed on as they are: rules, not the reader, judge them."""
    path = write(tmp_path, "a.json", b'[{"ImageName": 7, "OSType": null, "Platform": {"a": 1}}]')
    assert rows_of(path)[0].values == {"ImageName": 7, "OSType": None, "Platform": {"a": 1}}


@pytest.mark.parametrize(("data", "line", "reason"), [
    (b"", 1, "empty file: expected a JSON array of objects"),
    (b'{"ImageName": "a"}', 1, "a JSON job list must be an array of objects"),
    (b'[\n{"ImageName": "a"},\n]', 3, "trailing comma"),
    (b'[\n{"ImageName": "a"}\n{"ImageName": "b"}]', 3, "expected ',' or ']'"),
    (b'[\n{"ImageName": "a"}', 2, "expected ',' or ']'"),
    (b'[\n{"ImageName": \n"a', 2, "ends inside a string"),
    (b'[\n{"ImageName": \n"a"', 2, "ends inside an element"),
    (b'[\n{"ImageName": "a"]', 2, "JSON syntax error"),
    (b'[\n{"a": [[[{"b": 1}]]]]}', 2, "JSON syntax error: unexpected ']'"),
    (b'[\n{"ImageName":\n "a" "b"}]', 3, "JSON syntax error: Expecting ',' delimiter"),
    (b'[{"ImageName": "a"}] x', 1, "unexpected data after"),
    (b"[tru]", 1, "JSON syntax error: Expecting value"),
])
def test_json_syntax_error_is_a_file_error_saying_where(
        tmp_path: Path, data: bytes, line: int, reason: str) -> None:
    """Malformed JSON refuses the file, naming the line of the fault."""
    with pytest.raises(JobListError, match=reason) as info:
        rows_of(write(tmp_path, "a.json", data))
    assert info.value.line == line


json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8)


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(st.dictionaries(st.text(max_size=5), json_value, max_size=4), max_size=6),
       st.lists(st.integers(0, 2), min_size=7, max_size=7), st.integers(1, 7))
def test_json_array_matches_ijson_and_counts_lines(
        objects: list[dict[str, object]], gaps: list[int], chunk: int) -> None:
    """Any array of objects reads back as ijson parses it, each at its start line, in any chunking."""
    text, expected_lines = "[", []
    for n, obj in enumerate(objects):
        text += "\n" * gaps[n] + ("," if n else "")
        expected_lines.append(text.count("\n") + 1)
        text += json.dumps(obj, indent=gaps[n] or None, ensure_ascii=bool(n % 2))
    text += "\n]"
    data = text.encode()
    pieces = (data[i : i + chunk] for i in range(0, len(data), chunk))
    rows = list(read_stream(io.BufferedReader(ChunkStream(pieces), 8), "x.json", fmt="json"))
    assert [dict(r.values) for r in rows] == list(ijson.items(io.BytesIO(data), "item"))
    assert [r.line for r in rows] == expected_lines


# --- JSON Lines ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a.jsonl", "a.ndjson"])
def test_json_lines_one_object_per_line(tmp_path: Path, name: str) -> None:
    """JSON Lines rows are numbered by physical line; blank lines are skipped."""
    path = write(tmp_path, name, b'{"ImageName": "a"}\n\n{"ImageName": "b"}\r\n5\n')
    assert [(r.line, r.values, r.defect) for r in rows_of(path)] == [
        (1, {"ImageName": "a"}, None), (3, {"ImageName": "b"}, None),
        (4, {}, 'the line is a number, not an object like {"ImageName": "..."}')]


def test_json_lines_syntax_error_names_the_line(tmp_path: Path) -> None:
    """A malformed line refuses the file, naming that line."""
    with pytest.raises(JobListError, match="JSON syntax error") as info:
        rows_of(write(tmp_path, "a.jsonl", b'{"ImageName": "a"}\n{"ImageName": \n'))
    assert info.value.line == 2


# --- streaming -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "head", "row"), [
    ("csv", b"ImageName,OSSObject\n", b'img-%d,"a,\nb"\n'),
    ("json", b"[", b'{"ImageName": "img-%d"},\n'),
    ("jsonl", b"", b'{"ImageName": "img-%d"}\n'),
])
def test_rows_stream_from_an_endless_source(fmt: str, head: bytes, row: bytes) -> None:
    """The first rows of an endless stream arrive after reading only a few chunks."""
    chunks = itertools.chain([head], (row % i for i in itertools.count()))
    source = ChunkStream(chunks)
    rows = read_stream(io.BufferedReader(source, 64), "x", fmt=fmt)
    first = list(itertools.islice(rows, 3))
    assert [r.values["ImageName"] for r in first] == ["img-0", "img-1", "img-2"]
    assert source.taken < 10


@pytest.mark.timeout(10)
def test_rows_arrive_from_a_pipe_before_it_closes() -> None:
    """Rows written to a pipe are read while the writer still holds it open."""
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, b"ImageName\nimg-1\nimg-2\n")
        with open(read_fd, "rb") as stream:
            rows = read_stream(stream, "-", fmt=None)
            assert [next(rows).values, next(rows).values] == [{"ImageName": "img-1"}, {"ImageName": "img-2"}]
    finally:
        os.close(write_fd)


@pytest.mark.parametrize(("data", "first"), [
    (b"ImageName\nimg-1\n", 2), (b' [{"ImageName": "img-1"}]', 1), (b'\n{"ImageName": "img-1"}\n', 2)])
def test_stdin_format_is_sniffed(data: bytes, first: int) -> None:
    """Without a file name, '[' means a JSON array, '{' JSON Lines, anything else CSV."""
    rows = list(read_stream(io.BufferedReader(io.BytesIO(data)), "-", fmt=None))
    assert [(r.line, r.values) for r in rows] == [(first, {"ImageName": "img-1"})]
