"""``oss://BUCKET/PREFIX`` sources: parse them, and keep the keys that are image files (pure)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import PurePosixPath
from typing import NamedTuple

from pipeline.errors import UsageError

SCHEME = "oss://"
SOURCE_PREFIX = "Source."
NOT_FOUND = "Source.NotFound"
NO_BUCKET = "Source.NoSuchBucket"
EMPTY = "Source.Empty"
NOT_QCOW2 = "Source.NotQcow2"
DEFAULT_REGION = "cn-beijing"
DEFAULT_INCLUDE = ("*.qcow2",)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


@dataclass(frozen=True, slots=True)
class OssSource:
    """A bucket and a key prefix ('' for the whole bucket)."""

    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}"


def is_oss_url(text: str) -> bool:
    """True for an ``oss://`` argument."""
    return text.startswith(SCHEME)


def parse_oss_url(text: str) -> OssSource:
    """``oss://bucket/prefix`` -> OssSource; a UsageError says what is wrong."""
    if not is_oss_url(text):
        raise UsageError(f"{text!r} is not an OSS source; write oss://BUCKET/PREFIX")
    bucket, _, prefix = text[len(SCHEME):].partition("/")
    if not _BUCKET.match(bucket):
        raise UsageError(f"{text!r}: {bucket!r} is not an OSS bucket name (3-63 characters: lower-case "
                         "letters, digits and '-', starting and ending with a letter or digit)")
    return OssSource(bucket, prefix)


@dataclass(frozen=True, slots=True)
class KeyFilter:
    """``--include`` / ``--exclude`` globs, matched against the whole key and its last part."""

    include: Sequence[str] = DEFAULT_INCLUDE
    exclude: Sequence[str] = ()

    def wanted(self, key: str) -> bool:
        """True when some include glob matches and no exclude glob does (a folder marker never)."""
        if key.endswith("/"):
            return False
        name = PurePosixPath(key).name

        def hit(pattern: str) -> bool:
            return fnmatchcase(key, pattern) or fnmatchcase(name, pattern)

        return any(hit(p) for p in self.include) and not any(hit(p) for p in self.exclude)


def is_source_failure(code: str | None) -> bool:
    """True for the codes a source check records (the job was never sent)."""
    return code is not None and code.startswith(SOURCE_PREFIX)


class NamedObject(NamedTuple):
    """One OSS object an ImportImage names, and the field of the row that names its bucket."""

    region: str
    bucket: str
    key: str
    field: str
    """``OSSBucket``, or ``DiskDeviceMapping entry N OSSBucket`` (N from 1)."""


def named_objects(params: Mapping[str, str]) -> list[NamedObject]:
    """Every object the ImportImage names: the top level and each DiskDeviceMapping entry (an
    entry without a region takes the row's, else cn-beijing)."""
    region = params.get("OSSRegion") or DEFAULT_REGION
    found: list[NamedObject] = []
    if params.get("OSSBucket") and params.get("OSSObject"):
        found.append(NamedObject(region, params["OSSBucket"], params["OSSObject"], "OSSBucket"))
    raw = params.get("DiskDeviceMapping")
    entries = json.loads(raw) if raw else []
    for number, entry in enumerate(entries if isinstance(entries, list) else (), start=1):
        if isinstance(entry, dict) and entry.get("OSSBucket") and entry.get("OSSObject"):
            found.append(NamedObject(str(entry.get("OSSRegion") or region), str(entry["OSSBucket"]),
                                     str(entry["OSSObject"]), f"DiskDeviceMapping entry {number} OSSBucket"))
    return found
