"""Write the bad-input corpus under tests/data/bad/ (committed; rerun after changing a case).

Run: ``.venv/bin/python tests/data/make_bad_corpus.py``. Each file is small and broken in one
way; ``CASES`` says how ``validate`` and ``run`` must answer: the exit code (65: the file is not
a job list; 1: some rows are invalid) and the ``FILE:LINE`` the message must name (``None``:
the file as a whole). Binary cases (UTF-16, Latin-1, NUL) are why this is a script.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

BAD = Path(__file__).resolve().parent / "bad"
HEADER = "ImageName,OSSBucket,OSSObject,Platform\r\n"


@dataclass(frozen=True, slots=True)
class Case:
    """One corpus file and what the CLI must say about it."""

    name: str
    content: bytes
    exit_code: int
    line: int | None
    """The line the message names; None when it names only the file."""
    needle: str
    """A word the message must contain (case-insensitive)."""
    valid: tuple[str, ...] = ()
    """ImageNames of the valid rows (``run`` imports them; nothing else is sent)."""


def _csv(*rows: str) -> bytes:
    return (HEADER + "".join(r + "\r\n" for r in rows)).encode("utf-8")


def _json(value: object) -> bytes:
    return json.dumps(value, indent=1).encode("utf-8")


def _ok(name: str) -> dict[str, str]:
    return {"ImageName": name, "OSSBucket": "b", "OSSObject": f"o/{name}.qcow2", "Platform": "centos"}


CASES: tuple[Case, ...] = (
    # --- file-level: encodings and bytes (exit 65) ---
    Case("latin1.csv", HEADER.encode() + "caf\xe9-img,b,o.qcow2,centos\r\n".encode("latin-1"), 65, 2,
         "UTF-8"),
    Case("cp1252_quotes.csv", HEADER.encode() + b"ok-img,b,\x93o.qcow2\x94,centos\r\n", 65, 2, "UTF-8"),
    Case("utf16_le_bom.csv", "\ufeff".encode("utf-16-le") + _csv("ok-img,b,o,centos").decode().encode(
        "utf-16-le"), 65, 1, "UTF-16"),
    Case("utf16_be_bom.csv", _csv("ok-img,b,o,centos").decode().encode("utf-16"), 65, 1, "UTF-16"),
    Case("utf16_le_no_bom.csv", _csv("ok-img,b,o,centos").decode().encode("utf-16-le"), 65, 1, "NUL"),
    Case("nul_byte.csv", _csv("ok-img,b,o,centos", "ok-two,b,o\0x,centos"), 65, 3, "NUL"),
    Case("latin1.jsonl", b'{"ImageName": "caf\xe9-img", "OSSBucket": "b", "OSSObject": "o"}\n', 65, 1,
         "UTF-8"),
    Case("latin1.json", b'[\n {"ImageName": "caf\xe9-img", "OSSBucket": "b", "OSSObject": "o"}\n]\n', 65, 2,
         "UTF-8"),
    Case("utf16.json", _json([_ok("ok-img")]).decode().encode("utf-16"), 65, 1, "UTF-16"),
    Case("nul_byte.json", b'[\n {"ImageName": "ok-img",\0 "OSSBucket": "b", "OSSObject": "o"}\n]\n', 65, 2,
         "NUL"),
    Case("nul_byte.jsonl", b'{"ImageName": "ok-img", "OSSBucket": "b", "OSSObject": "o"}\n\0\n', 65, 2,
         "NUL"),
    # --- file-level: structure (exit 65) ---
    Case("empty.csv", b"", 65, None, "empty"),
    Case("blank_lines_only.csv", b"\r\n\r\n  \r\n", 65, None, "empty"),
    Case("empty.json", b"", 65, 1, "empty"),
    Case("no_header.csv", b"ok-img,b,o.qcow2,centos\r\nok-two,b,o.qcow2,centos\r\n", 65, 1, "column"),
    Case("unknown_column.csv", b"ImageName,OSSBucket,OSSObject,Flavour\r\nok-img,b,o,x\r\n", 65, 1,
         "Flavour"),
    Case("duplicate_column.csv", b"ImageName,OSSBucket,OSSObject,OSSBucket\r\nok-img,b,o,b\r\n", 65, 1,
         "twice"),
    Case("no_imagename_column.csv", b"OSSBucket,OSSObject\r\nb,o\r\n", 65, 1, "ImageName"),
    Case("unclosed_quote.csv", _csv("ok-img,b,o,centos", 'ok-two,b,"o.qcow2,centos'), 65, 3, "quote"),
    Case("json_trailing_comma.json", b'[\n {"ImageName": "ok-img", "OSSBucket": "b", "OSSObject": "o"},\n]\n',
         65, 3, "trailing comma"),
    Case("json_unclosed_array.json", b'[\n {"ImageName": "ok-img", "OSSBucket": "b", "OSSObject": "o"}\n',
         65, 3, "JSON syntax"),
    Case("json_bad_token.json", b'[\n {"ImageName": \'ok-img\', "OSSBucket": "b", "OSSObject": "o"}\n]\n',
         65, 2, "JSON syntax"),
    Case("json_top_level_object.json", _json(_ok("ok-img")), 65, 1, "array"),
    Case("jsonl_syntax.jsonl", b'{"ImageName": "ok-img", "OSSBucket": "b", "OSSObject": "o"}\n'
         b'{"ImageName": "ok-two", "OSSBucket": "b" "OSSObject": "o"}\n', 65, 2, "JSON syntax"),
    # --- row-level (exit 1): the good rows go, the bad ones are never sent ---
    Case("ragged_row.csv", _csv("ok-img,b,o.qcow2,centos", "ok-two,b,o.qcow2,centos,extra"), 1, 3, "cells",
         valid=("ok-img",)),
    Case("duplicate_names.csv", _csv("ok-img,b,o.qcow2,centos", "ok-img,b,other.qcow2,centos"), 1, 3,
         "already used", valid=("ok-img",)),
    Case("duplicate_names.json", _json([_ok("ok-img"), _ok("ok-img")]), 1, 8, "already used",
         valid=("ok-img",)),
    Case("bom_then_bad_row.csv", b"\xef\xbb\xbf" + _csv("ok-img,b,o.qcow2,centos", "9-bad,b,o.qcow2,centos"),
         1, 3, "must start with a letter", valid=("ok-img",)),
    Case("wrong_type_number.json", _json([_ok("ok-img"), {**_ok("x"), "ImageName": 12345}]), 1, 8,
         "must be a string", valid=("ok-img",)),
    Case("wrong_type_null.json", _json([_ok("ok-img"), {**_ok("ok-two"), "OSSBucket": None}]), 1, 8,
         "null", valid=("ok-img",)),
    Case("wrong_type_nested.json", _json([_ok("ok-img"), {**_ok("ok-two"), "Platform": {"name": "centos"}}]),
         1, 8, "object", valid=("ok-img",)),
    Case("wrong_type_bool.jsonl", (json.dumps(_ok("ok-img")) + "\n"
                                   + json.dumps({**_ok("ok-two"), "OSVersion": True}) + "\n").encode(),
         1, 2, "boolean", valid=("ok-img",)),
    Case("element_not_object.json", _json([_ok("ok-img"), [1, 2]]), 1, 8, "not an object",
         valid=("ok-img",)),
    Case("line_not_object.jsonl", (json.dumps(_ok("ok-img")) + "\n" + '"just a string"\n').encode(), 1, 2,
         "not an object", valid=("ok-img",)),
    Case("unknown_field.json", _json([_ok("ok-img"), {**_ok("ok-two"), "Colour": "red"}]), 1, 8,
         "unknown field", valid=("ok-img",)),
    Case("bad_platform.csv", _csv("ok-img,b,o.qcow2,centos", "ok-two,b,o.qcow2,windows95"), 1, 3,
         "not one of", valid=("ok-img",)),
    Case("missing_source.csv", _csv("ok-img,b,o.qcow2,centos", "ok-two,,,centos"), 1, 3, "no image source",
         valid=("ok-img",)),
)


def main() -> int:
    """Write every case; remove corpus files no case names any more."""
    BAD.mkdir(parents=True, exist_ok=True)
    names = {case.name for case in CASES}
    for stale in BAD.iterdir():
        if stale.is_file() and stale.name not in names:
            stale.unlink()
    for case in CASES:
        (BAD / case.name).write_bytes(case.content)
    print(f"wrote {len(CASES)} files to {BAD}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
