"""Stream job lists (CSV, JSON array, JSON Lines) into raw rows that keep their file and line."""

from __future__ import annotations

import csv
import difflib
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol, cast

from pipeline.errors import JobListError
from pipeline.joblist.job import PARAMETERS

MAX_LINE_BYTES = 1 << 20
"""A physical line (or JSON element) longer than this is not a job list; refuse it, stay bounded."""
CHUNK_BYTES = 1 << 16
EXTENSIONS: Mapping[str, str] = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class ByteStream(Protocol):
    """What the readers need from a binary stream: an ``io.BufferedReader`` (``open(p, "rb")``)."""

    def peek(self, size: int = 0, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...

    def read1(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class RawRow:
    """One row as read, before validation: its fields as the file gave them."""

    source: str
    """The job list file as the user named it."""
    line: int
    """Physical line (1-based) where the row starts."""
    values: Mapping[str, object]
    """Field name -> value: ``str`` from CSV, any JSON value from JSON."""
    defect: str | None = None
    """Why the row cannot be read as a job at all (ragged CSV row, JSON element not an object)."""


def read_job_list(path: str) -> Iterator[RawRow]:
    """Stream the rows of the job list at ``path`` (``-`` for stdin), format chosen by extension."""
    if path == "-":
        yield from read_stream(cast(ByteStream, sys.stdin.buffer), "-", fmt=None)
        return
    suffix = path[path.rfind(".") :].lower() if "." in path.rsplit("/", 1)[-1] else ""
    fmt = EXTENSIONS.get(suffix)
    if fmt is None:
        raise JobListError(path, None, f"unknown job list type {suffix or '(no extension)'!r}: "
                           f"name it .csv, .json, .jsonl or .ndjson")
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except IsADirectoryError:
        raise JobListError(path, None, "is a directory, not a job list file") from None
    except OSError as exc:
        raise JobListError(path, None, f"cannot open: {exc.strerror or exc}") from None
    with stream:
        try:
            yield from read_stream(stream, path, fmt=fmt)
        except OSError as exc:
            raise JobListError(path, None, f"cannot read: {exc.strerror or exc}") from None


def read_stream(stream: ByteStream, source: str, *, fmt: str | None) -> Iterator[RawRow]:
    """Stream rows from an open binary stream; ``fmt`` is csv/json/jsonl, or None to sniff."""
    head = stream.peek(64)[:64]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise JobListError(source, 1, "the file is UTF-16 (it starts with a UTF-16 byte order mark); "
                           "save it as UTF-8")
    if fmt is None:
        first = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
        fmt = "json" if first == b"[" else "jsonl" if first == b"{" else "csv"
    readers = {"csv": read_csv, "json": read_json_array, "jsonl": read_json_lines}
    yield from readers[fmt](stream, source)


def _lines(stream: ByteStream, source: str, at: list[int]) -> Iterator[str]:
    """Yield decoded lines with their endings, refusing non-UTF-8, NUL bytes and huge lines.

    ``at[0]`` is kept at the number of the line last yielded.
    """
    offset = 0
    number = 0
    while raw := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        at[0] = number
        if len(raw) > MAX_LINE_BYTES:
            raise JobListError(source, number, f"line longer than {MAX_LINE_BYTES} bytes: not a job list")
        if (nul := raw.find(b"\0")) >= 0:
            raise JobListError(source, number, f"NUL byte at byte offset {offset + nul}: the file is "
                               "binary or UTF-16/UTF-32; save it as UTF-8")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JobListError(source, number, _not_utf8(raw, exc, offset)) from None
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]
        offset += len(raw)
        yield text


def _not_utf8(raw: bytes, exc: UnicodeDecodeError, offset: int) -> str:
    bad = raw[exc.start : exc.start + 1].hex().upper()
    return (f"not valid UTF-8 at byte offset {offset + exc.start} (byte 0x{bad}); the file may be "
            "Latin-1 or Windows-1252: save it as UTF-8")


def read_csv(stream: ByteStream, source: str) -> Iterator[RawRow]:
    """Stream a CSV job list whose header row names ImportImage parameters."""
    at = [0]
    header: list[str] | None = None
    width = 0
    start = 1
    try:
        for cells in csv.reader(_lines(stream, source, at), strict=True):
            line, start = start, at[0] + 1
            if not any(cells) or "".join(cells).isspace():
                continue
            if header is None:
                header = _header(cells, source, line)
                width = len(header)
            elif len(cells) > width:
                yield RawRow(source, line, {}, f"{len(cells)} cells but the header has {width} "
                             "columns: quote cells that contain commas")
            else:
                yield RawRow(source, line, dict(zip(header, cells, strict=False)))
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):  # not a quoting problem: say what it is
            raise JobListError(source, start, f"a cell is longer than {csv.field_size_limit()} "
                               "characters: not a job list") from None
        raise JobListError(source, start, f"CSV syntax: {exc}; check the double quotes in this "
                           "row (a quote inside a quoted field is written twice: \"\")") from None
    if header is None:
        raise JobListError(source, None, "empty file: expected a header row naming the columns, "
                           "e.g. ImageName,OSSBucket,OSSObject")


def _header(cells: list[str], source: str, line: int) -> list[str]:
    names = [cell.strip() for cell in cells]
    valid = ", ".join(PARAMETERS)
    for name in names:
        if name not in PARAMETERS:
            close = difflib.get_close_matches(name, PARAMETERS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            for sep, label in ((";", "semicolons"), ("\t", "tabs")):
                if sep in name and any(part.strip() in PARAMETERS for part in name.split(sep)):
                    hint = (f" (the columns look separated by {label}: ens-migrate reads "
                            "comma-separated CSV; save the file with ',' as the delimiter)")
            raise JobListError(source, line, f"unknown column {name!r}{hint}; valid columns: {valid}")
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise JobListError(source, line, f"column {twice!r} appears twice in the header")
    if "ImageName" not in names:
        raise JobListError(source, line, "the header row has no ImageName column; the first row "
                           f"must name the columns, from: {valid}")
    return names


def read_json_lines(stream: ByteStream, source: str) -> Iterator[RawRow]:
    """Stream a JSON Lines job list: one object per line, blank lines skipped."""
    at = [0]
    for text in _lines(stream, source, at):
        if text.strip():
            yield _row(source, at[0], _loads(text.rstrip("\r\n"), source, at[0]), None)


def read_json_array(stream: ByteStream, source: str) -> Iterator[RawRow]:
    """Stream a JSON array of objects, each element parsed alone, with the line where it starts."""
    scan = _ArrayScanner(stream, source)
    for line, offset, blob in scan.elements():
        try:
            text = blob.decode("utf-8")
        except UnicodeDecodeError as exc:
            where = line + blob.count(b"\n", 0, exc.start)
            raise JobListError(source, where, _not_utf8(blob, exc, offset)) from None
        yield _row(source, line, _loads(text, source, line), scan.index)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


_decode = json.JSONDecoder(object_pairs_hook=_unique_pairs).decode


def _key_line(text: str, key: str, line: int) -> int:
    """The line of the second ``"key":`` in an element that starts on ``line``."""
    marks = [m.start() for m in re.finditer(re.escape(json.dumps(key)) + r"\s*:", text)]
    at = marks[1] if len(marks) > 1 else 0
    return line + text.count("\n", 0, at)


def _loads(text: str, source: str, line: int) -> object:
    try:
        return _decode(text)
    except _DuplicateKey as exc:
        return _Defect(f"key {exc.key!r} appears twice in this object (again on line "
                       f"{_key_line(text, exc.key, line)}); keep one")
    except json.JSONDecodeError as exc:
        raise JobListError(source, line + exc.lineno - 1,
                           f"JSON syntax error: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise JobListError(source, line, "JSON nested too deeply") from None


@dataclass(frozen=True, slots=True)
class _Defect:
    reason: str


def _row(source: str, line: int, value: object, index: int | None) -> RawRow:
    if isinstance(value, dict):
        return RawRow(source, line, value)
    if isinstance(value, _Defect):
        return RawRow(source, line, {}, value.reason)
    kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")
    what = f"element {index}" if index is not None else "the line"
    return RawRow(source, line, {}, f"{what} is {kind}, not an object like {{\"ImageName\": \"...\"}}")


_WS = re.compile(rb"[ \t\r\n]*")
_STRUCTURAL = re.compile(rb'["{}\[\]]')
_STRING_REST = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_SCALAR = re.compile(rb"[^,\]\s]+")
_CLOSER = {ord("{"): ord("}"), ord("["): ord("]")}
_STR = rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"'
_FLAT = rb'[\[{](?:[^{}\[\]"]++|' + _STR + rb")*+[\]}]"
_NESTED = re.compile(rb'[\[{](?:[^{}\[\]"]++|' + _STR + rb'|[\[{](?:[^{}\[\]"]++|' + _STR + rb"|"
                     + _FLAT + rb")*+[\]}])*+[\]}]", re.S)
"""An element nested at most three deep, found in one C call; anything else takes the slow path."""


class _ArrayScanner:
    """Find the elements of a top-level JSON array in a byte stream, counting lines as it goes.

    ijson's C backend gives no positions, so we find element boundaries ourselves (strings,
    nesting) and leave the parsing of each element to ``json.loads``. Memory: one element.
    """

    def __init__(self, stream: ByteStream, source: str) -> None:
        self._stream = stream
        self._source = source
        self._buf = b""
        self._pos = 0
        self._base = 0
        """File offset of ``_buf[0]``."""
        self._line = 1
        """Line number at ``_buf[_pos]``."""
        self._eof = False
        self.index = -1

    def elements(self) -> Iterator[tuple[int, int, bytes]]:
        """Yield (line, byte offset, bytes) for each element, then check the array is closed."""
        if self._skip_ws() != ord("["):
            self._fail("a JSON job list must be an array of objects: [{\"ImageName\": ...}, ...]"
                       if not self._eof else "empty file: expected a JSON array of objects")
        self._advance(1)
        if self._skip_ws() == ord("]"):
            self._advance(1)
        else:
            while True:
                self.index += 1
                yield self._element()
                sep = self._skip_ws()
                if sep == ord("]"):
                    self._advance(1)
                    break
                if sep != ord(","):
                    self._fail("JSON syntax error: expected ',' or ']' after an array element")
                self._advance(1)
                if self._skip_ws() == ord("]"):
                    self._fail("JSON syntax error: trailing comma before ']'")
        if self._skip_ws() is not None:
            self._fail("JSON syntax error: unexpected data after the array's closing ']'")

    def _element(self) -> tuple[int, int, bytes]:
        # Offsets are relative to self._pos: _fill may drop consumed bytes and move the buffer.
        line, offset, first = self._line, self._base + self._pos, self._buf[self._pos]
        if first in _CLOSER:
            fast = _NESTED.match(self._buf, self._pos)
            end = fast.end() - self._pos if fast else self._container_end()
        elif first == ord('"'):
            while (m := _STRING_REST.match(self._buf, self._pos + 1)) is None:
                self._grow("JSON syntax error: the file ends inside a string")
            end = m.end() - self._pos
        else:
            while ((m := _SCALAR.match(self._buf, self._pos)) and m.end() == len(self._buf)
                   and self._grow(None)):
                pass
            end = m.end() - self._pos if m else 1
        if end > MAX_LINE_BYTES:
            # _grow checks before reading the next chunk, so an element can end up to a chunk over.
            self._fail(f"JSON element larger than {MAX_LINE_BYTES} bytes: not a job list")
        blob = self._buf[self._pos : self._pos + end]
        self._advance(end)
        return line, offset, blob

    def _container_end(self) -> int:
        stack: list[int] = []
        rel = 0
        while True:
            m = _STRUCTURAL.search(self._buf, self._pos + rel)
            if m is None:
                rel = len(self._buf) - self._pos
                self._grow("JSON syntax error: the file ends inside an element")
                continue
            char = self._buf[m.start()]
            if char == ord('"'):
                s = _STRING_REST.match(self._buf, m.end())
                if s is None:
                    rel = m.start() - self._pos
                    self._grow("JSON syntax error: the file ends inside a string")
                    continue
                rel = s.end() - self._pos
            elif char in _CLOSER:
                stack.append(_CLOSER[char])
                rel = m.end() - self._pos
            else:
                if not stack or stack.pop() != char:
                    self._advance(m.start() - self._pos)
                    self._fail(f"JSON syntax error: unexpected {chr(char)!r}")
                rel = m.end() - self._pos
                if not stack:
                    return rel

    def _grow(self, at_eof: str | None) -> bool:
        """Read more of the current element; at the end of the stream fail with ``at_eof`` if given."""
        if len(self._buf) - self._pos > MAX_LINE_BYTES:
            self._fail(f"JSON element larger than {MAX_LINE_BYTES} bytes: not a job list")
        if self._fill():
            return True
        if at_eof is not None:
            self._fail(at_eof)
        return False

    def _skip_ws(self) -> int | None:
        """Skip whitespace; return the next byte, or None at the end of the stream."""
        while True:
            end = _WS.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            self._advance(end - self._pos)
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._fill():
                return None

    def _advance(self, n: int) -> None:
        self._line += self._buf.count(b"\n", self._pos, self._pos + n)
        self._pos += n

    def _fill(self) -> bool:
        """Drop consumed bytes and append more; False at the end of the stream."""
        if self._eof:
            return False
        chunk = self._stream.read1(CHUNK_BYTES)
        if not chunk:
            self._eof = True
            return False
        if self._base == 0 and not self._buf and chunk.startswith(b"\xef\xbb\xbf"):
            chunk, self._base = chunk[3:], 3
        self._base += self._pos
        self._buf = self._buf[self._pos :] + chunk
        self._pos = 0
        if (nul := self._buf.find(b"\0")) >= 0:
            self._advance(nul)
            self._fail(f"NUL byte at byte offset {self._base + nul}: the file is binary or "
                       "UTF-16/UTF-32; save it as UTF-8")
        return True

    def _fail(self, reason: str) -> None:
        raise JobListError(self._source, self._line, reason)


_NAME_KEY = b'"ImageName"'
_CHUNK = 1 << 20


def estimate_rows(paths: Iterable[str]) -> int | None:
    """A cheap count of the rows in ``paths`` for progress (None for stdin or an unreadable
    file): JSON and JSON Lines count their ``"ImageName"`` keys, CSV its lines after the header.

    One pass over the bytes, no parsing (about 0.1 s for a million rows); a count that is off by
    a quoted newline or a missing name only moves the ETA.
    """
    total = 0
    for path in paths:
        if path == "-":
            return None
        csv = not path.lower().endswith((".json", ".jsonl", ".ndjson"))
        try:
            with open(path, "rb") as stream:
                count, tail = 0, b""
                while chunk := stream.read(_CHUNK):
                    data = tail + chunk
                    count += data.count(b"\n") if csv else data.count(_NAME_KEY)
                    tail = b"" if csv else data[-(len(_NAME_KEY) - 1):]
        except OSError:
            return None
        total += max(0, count - 1) if csv else count
    return total
