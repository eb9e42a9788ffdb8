"""``oss://BUCKET/PREFIX`` sources: parse them, and keep the keys that are image files (pure)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import PurePosixPath

from pipeline.errors import UsageError

SCHEME = "oss://"
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
