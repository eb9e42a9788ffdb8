"""Validate raw job-list rows against ImportImage's rules: a Job, or the problems that stop one."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from pipeline.errors import JobListError
from pipeline.joblist.job import DISK_MAPPING_KEYS, PARAMETERS, Job, encode_disk_mapping
from pipeline.joblist.names import NameIndex
from pipeline.joblist.readers import RawRow, read_job_list
from pipeline.joblist.rules import JobRules

REQUIRED: tuple[str, ...] = ("ImageName", "ComputeType", "OSType", "ImageFormat", "Architecture")
_PARAMETER_SET = frozenset(PARAMETERS)
_SIMPLE = _PARAMETER_SET - {"DiskDeviceMapping"}
_NAME = re.compile("[A-Za-z\u4e00-\u9fff][A-Za-z0-9\u4e00-\u9fff:_-]{1,127}")
_NAME_FIRST = re.compile("[A-Za-z\u4e00-\u9fff]")
_NAME_BAD = re.compile("[^A-Za-z0-9\u4e00-\u9fff:_-]")
_NAME_CHARS = "letters, Chinese characters, digits, ':', '_' and '-'"


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a row is not a valid job."""

    source: str
    line: int
    field: str
    """The offending field, or ``row`` when the row as a whole is unreadable."""
    message: str
    """The value, the rule it breaks and the fix."""

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class InvalidRow:
    """A row that will not be sent, and every problem found in it."""

    source: str
    line: int
    name: str | None
    """The row's ImageName as given (possibly itself invalid), or None if it has none."""
    problems: tuple[Problem, ...]

    @property
    def location(self) -> str:
        """``FILE:LINE`` for messages."""
        return f"{self.source}:{self.line}"

    @property
    def fingerprint(self) -> str:
        """A hash of the name and every problem (each names its value): the same invalid row read
        again has the same fingerprint, and is journaled once."""
        blob = "\x1f".join([self.name or "", *(f"{p.field}\x1e{p.message}" for p in self.problems)])
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


Validated = Job | InvalidRow
"""What validating a row gives: a job ready to send, or why it is not one."""


def show(value: str, limit: int = 60) -> str:
    """Quote a value for a message, shortened if long."""
    return repr(value if len(value) <= limit else value[: limit - 1] + "…")


def check_name(name: str) -> str | None:
    """Return why ``name`` is not a valid ImageName, or None if it is."""
    if _NAME.fullmatch(name):
        return None
    if name.startswith(("http://", "https://")):
        return f"{show(name)} must not start with http:// or https://"
    if not 2 <= len(name) <= 128:
        return f"{show(name)} is {len(name)} character{'' if len(name) == 1 else 's'} long; use 2 to 128"
    if not _NAME_FIRST.match(name):
        return f"{show(name)} must start with a letter or a Chinese character"
    if bad := _NAME_BAD.search(name):
        return (f"{show(name)} contains {bad.group()!r} at position {bad.start() + 1}; "
                f"use only {_NAME_CHARS}")
    return None


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", str: "a string", list: "an array", dict: "an object"}.get(
        type(value), "a number")


def check_disk_mapping(value: object, allowed_regions: tuple[str, ...] | None) -> (
        tuple[list[Mapping[str, str]], list[str]]):
    """Parse a DiskDeviceMapping (JSON text or a JSON array) into entries, or say what is wrong."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            return [], [f"is not valid JSON ({exc.msg} at column {exc.colno}); write a JSON array "
                        'like [{"OSSBucket": "b", "OSSObject": "disk.qcow2"}]']
    if not isinstance(value, list):
        return [], [f"must be a JSON array of objects, not {_type_name(value)}"]
    entries: list[Mapping[str, str]] = []
    errors: list[str] = []
    for n, entry in enumerate(value, start=1):
        if not isinstance(entry, dict):
            errors.append(f"entry {n} must be an object, not {_type_name(entry)}")
            continue
        if unknown := sorted(set(entry) - set(DISK_MAPPING_KEYS)):
            errors.append(f"entry {n} has unknown key {unknown[0]!r}; use only "
                          f"{', '.join(DISK_MAPPING_KEYS)}")
        clean = {k: v for k, v in entry.items() if k in DISK_MAPPING_KEYS and isinstance(v, str) and v}
        for key in DISK_MAPPING_KEYS:
            item = entry.get(key)
            if item is not None and not isinstance(item, str):
                errors.append(f"entry {n} {key} must be a string, not {_type_name(item)}")
            elif key != "OSSRegion" and not (item or "").strip():
                errors.append(f"entry {n} has no {key}; each entry names an OSSBucket and an OSSObject")
        region = clean.get("OSSRegion")
        if region and allowed_regions is not None and region not in allowed_regions:
            errors.append(f"entry {n} OSSRegion {show(region)} is not one of: {', '.join(allowed_regions)}")
        entries.append(clean)
    if not value:
        errors.append("is an empty array; leave it out or add an entry with OSSBucket and OSSObject")
    return entries, errors


def check_row(row: RawRow, rules: JobRules) -> Validated:
    """Validate one raw row: fill defaults, apply every rule; pure, no duplicate-name check."""
    problems: list[tuple[str, str]] = []
    raw_name = row.values.get("ImageName")
    name = raw_name if isinstance(raw_name, str) else None
    if row.defect is not None:
        return InvalidRow(row.source, row.line, name, (Problem(row.source, row.line, "row", row.defect),))
    values: dict[str, str] = {}
    mapping: list[Mapping[str, str]] = []
    for key, value in row.values.items():
        if value is None and key in _PARAMETER_SET:
            continue  # JSON null means absent: the default applies, or the field is left out
        if key in _SIMPLE and type(value) is str:
            if value and not value.isspace():
                values[key] = value
        elif key not in _PARAMETER_SET:
            problems.append((key, f"unknown field; valid fields: {', '.join(PARAMETERS)}"))
        elif key != "DiskDeviceMapping":
            problems.append((key, f"must be a string, not {_type_name(value)}"))
        elif not (isinstance(value, str) and (not value or value.isspace())):
            mapping, errors = check_disk_mapping(value, rules.allowed.get("OSSRegion"))
            problems.extend((key, e) for e in errors)
    for key, default in rules.defaults.items():
        given = row.values.get(key)
        if key not in values and (given is None or type(given) is str):
            values[key] = default
    _check_values(values, bool(mapping), rules, problems)
    if problems:
        found = tuple(Problem(row.source, row.line, f, m) for f, m in problems)
        return InvalidRow(row.source, row.line, name, found)
    if mapping:
        values["DiskDeviceMapping"] = encode_disk_mapping(mapping)
    return Job(row.source, row.line, tuple([(k, values[k]) for k in PARAMETERS if k in values]))


def _check_values(values: Mapping[str, str], has_mapping: bool, rules: JobRules,
                  problems: list[tuple[str, str]]) -> None:
    failed = {f for f, _ in problems} if problems else set()
    for key in REQUIRED:
        if key not in values and key not in failed:
            fix = "" if key == "ImageName" else " or set a default in the config's [defaults]"
            problems.append((key, f"is required; fill it in{fix}"))
    if "ImageName" in values and (why := check_name(values["ImageName"])):
        problems.append(("ImageName", why))
    for key, allowed in rules.allowed.items():
        if (value := values.get(key)) is not None and value not in allowed:
            problems.append((key, f"{show(value)} is not one of: {', '.join(allowed)}"))
    bucket, obj = "OSSBucket" in values, "OSSObject" in values
    if bucket != obj:
        given, missing = ("OSSBucket", "OSSObject") if bucket else ("OSSObject", "OSSBucket")
        problems.append((missing, f"is empty but {given} is given; name both the bucket and the object"))
    elif not bucket and not has_mapping and not failed & {"OSSBucket", "OSSObject", "DiskDeviceMapping"}:
        problems.append(("OSSObject", "no image source; give OSSBucket and OSSObject, or DiskDeviceMapping"))


def iter_rows(paths: Iterable[str], rules: JobRules) -> Iterator[Validated]:
    """Stream every row of the job lists in ``paths`` (``-`` is stdin), validated, in order.

    Raises ``JobListError`` when a file cannot be read as a job list; memory stays bounded.
    A repeated ImageName (across all ``paths``) makes every later row invalid.
    """
    paths = tuple(paths)
    _refuse_repeats(paths)
    names = NameIndex()
    for path in paths:
        for raw in read_job_list(path):
            result = check_row(raw, rules)
            if result.name is None or (isinstance(result, InvalidRow) and check_name(result.name)):
                yield result
                continue
            first = names.first_seen(result.name, raw.source, raw.line)
            if first is None:
                yield result
                continue
            where = f"on line {first[1]}" if first[0] == raw.source else f"at {first[0]}:{first[1]}"
            dup = Problem(raw.source, raw.line, "ImageName",
                          f"{show(result.name)} is already used {where}; image names must be unique")
            earlier = result.problems if isinstance(result, InvalidRow) else ()
            yield InvalidRow(raw.source, raw.line, result.name, (*earlier, dup))


def _refuse_repeats(paths: tuple[str, ...]) -> None:
    """The same file (or ``-``) given twice would make every row of its second reading a duplicate
    of its first: say what happened instead."""
    seen: dict[object, str] = {}
    for path in paths:
        try:
            stat = os.stat(path) if path != "-" else None
        except OSError:
            continue  # the reader says why it cannot be opened
        identity: object = "-" if stat is None else (stat.st_dev, stat.st_ino)
        if identity in seen:
            same = "" if seen[identity] == path else f" (as {seen[identity]!r})"
            raise JobListError(path, None, f"listed twice{same}: give each job list once")
        seen[identity] = path
