"""Discover: list a bucket prefix, keep the image files, name them, and report what cannot be a job."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

import anyio
import structlog

from pipeline.errors import JobListError
from pipeline.joblist.naming import image_name
from pipeline.oss.client import OssClient, OssError, request_id_note
from pipeline.oss.source import KeyFilter, OssSource

log = structlog.get_logger("ens_migrate.discover")

COLUMNS = ("ImageName", "OSSRegion", "OSSBucket", "OSSObject")


@dataclass(slots=True)
class Discovery:
    """What a listing gave: the jobs by name (listing order), and the objects left out and why."""

    jobs: dict[str, dict[str, str]] = field(default_factory=dict)
    collisions: dict[str, list[str]] = field(default_factory=dict)
    """ImageName -> every key that lands on it (two or more; none of them is emitted)."""
    empty: list[str] = field(default_factory=list)
    listed: int = 0
    skipped: int = 0
    """Keys the globs left out."""
    pages: int = 0

    def rows(self) -> Iterator[dict[str, str]]:
        """The importable rows, in listing order."""
        for name, row in self.jobs.items():
            if name not in self.collisions:
                yield row

    def problems(self) -> Iterator[str]:
        """One line per object that is not emitted (collisions and empty objects)."""
        for name, keys in self.collisions.items():
            listed = ", ".join(repr(k) for k in keys)
            yield (f"ImageName {name!r} would be used by {len(keys)} objects ({listed}); none is emitted: "
                   "rename the objects or choose another --name template")
        for key in self.empty:
            yield f"{key!r} is empty (0 bytes); not emitted: upload the image again"


async def discover(client: OssClient, source: OssSource, *, region: str, keys: KeyFilter,
                   template: str, page_interval: float = 0.0,
                   clock: Callable[[], float] = time.monotonic) -> Discovery:
    """List every page under the source (paced: at most one page per ``page_interval`` seconds;
    the SDK retries a failed page), and fold the objects into a Discovery."""
    found = Discovery()
    token: str | None = None
    last = None
    while True:
        if last is not None and page_interval > 0:
            await anyio.sleep(max(0.0, last + page_interval - clock()))
        last = clock()
        try:
            objects, token = await client.list_page(source.bucket, source.prefix, token)
        except OssError as exc:
            if not exc.missing_bucket:
                raise
            # As a job-list file that does not exist: the source cannot be read (exit 65).
            asked = request_id_note(exc.request_id)
            raise JobListError(str(source), None, f"bucket {source.bucket!r} does not exist (OSS "
                               f"NoSuchBucket, region {region}{asked}); check the bucket name and its "
                               "region") from None
        found.pages += 1
        for obj in objects:
            found.listed += 1
            if not keys.wanted(obj.key):
                found.skipped += 1
                continue
            if obj.size == 0:
                found.empty.append(obj.key)
                continue
            name = image_name(template, obj.key)
            if name in found.jobs:
                found.collisions.setdefault(name, [found.jobs[name]["OSSObject"]]).append(obj.key)
                continue
            found.jobs[name] = {"ImageName": name, "OSSRegion": region, "OSSBucket": source.bucket,
                                "OSSObject": obj.key}
        if token is None:
            break
    log.info("ens_migrate.discover.listed", message="listed the OSS prefix", source=str(source),
             objects=found.listed, pages=found.pages, jobs=len(found.jobs) - len(found.collisions))
    return found


def write_rows(rows: Iterator[dict[str, str]], out: TextIO, fmt: str) -> int:
    """Write the rows as a job list (csv, json or jsonl); returns how many."""
    count = 0
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        out.write(buffer.getvalue())
        for row in rows:
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(row)
            out.write(buffer.getvalue())
            count += 1
        return count
    if fmt == "json":
        out.write("[")
        for row in rows:
            out.write(("\n  " if count == 0 else ",\n  ") + json.dumps(row, ensure_ascii=False))
            count += 1
        out.write("\n]\n")
        return count
    for row in rows:
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count
