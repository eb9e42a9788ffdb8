"""ImageName from an OSS key: a template, then a deterministic repair to the ImportImage rules (pure)."""

from __future__ import annotations

import hashlib
import re
import string
from pathlib import PurePosixPath

from pipeline.errors import UsageError
from pipeline.joblist.validate import check_name

DEFAULT_TEMPLATE = "{parent}-{stem}"
"""The key's folder and file stem: ``nodes/kubernetes 1.28/worker.qcow2`` -> ``kubernetes-1-28-worker``."""
FIELDS = ("stem", "name", "parent", "key")
MAX_NAME = 128
PREFIX = "img-"
_BAD_RUN = re.compile("[^A-Za-z0-9\u4e00-\u9fff:_-]+")
_DASHES = re.compile("-{2,}")
_FIRST = re.compile("[A-Za-z\u4e00-\u9fff]")


def check_template(template: str) -> str:
    """The template itself, or a UsageError naming the unknown field."""
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise UsageError(f"--name {template!r} is not a template ({exc}); e.g. {DEFAULT_TEMPLATE}") from exc
    unknown = sorted(names - set(FIELDS))
    if unknown or not names:
        raise UsageError(f"--name {template!r}: use the fields {{stem}}, {{name}}, {{parent}}, {{key}} "
                         f"(unknown: {', '.join(unknown) or 'none used'}); e.g. {DEFAULT_TEMPLATE}")
    return template


def render(template: str, key: str) -> str:
    """The raw name: ``{name}`` the last part of the key, ``{stem}`` it without its extension,
    ``{parent}`` the folder it is in ('' at the top), ``{key}`` the whole key."""
    path = PurePosixPath(key)
    parent = path.parent.name if str(path.parent) != "." else ""
    return template.format(stem=path.stem, name=path.name, parent=parent, key=key)


def repair(raw: str, key: str) -> str:
    """Make ``raw`` a valid ImageName, deterministically:

    1. every run of characters other than letters, Chinese characters, digits, ``:``, ``_`` and ``-``
       becomes one ``-``; runs of ``-`` shrink to one; ``-`` at either end is dropped;
    2. a name that does not start with a letter (or is shorter than 2) gets the prefix ``img-``;
    3. a name over 128 characters keeps its first 119 and ends ``-`` + 8 hex digits of the key's
       SHA-256, so two long keys with a common start stay apart.
    """
    name = _DASHES.sub("-", _BAD_RUN.sub("-", raw)).strip("-")
    if not _FIRST.match(name) or len(name) < 2:
        name = PREFIX + name
        name = name.rstrip("-") if len(name) > len(PREFIX) else "img-" + hashlib.sha256(
            key.encode()).hexdigest()[:8]
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(key.encode()).hexdigest()[:8]
        name = f"{name[:MAX_NAME - 9].rstrip('-')}-{digest}"
    assert check_name(name) is None, (raw, name)
    return name


def image_name(template: str, key: str) -> str:
    """The valid ImageName the template gives for ``key``."""
    return repair(render(template, key), key)
