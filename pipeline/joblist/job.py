"""The Job value: one ImportImage request, keyed by ImageName, with where it came from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

PARAMETERS: tuple[str, ...] = (
    "ImageName",
    "ComputeType",
    "OSSRegion",
    "OSSBucket",
    "OSSObject",
    "OSType",
    "Platform",
    "ImageFormat",
    "Architecture",
    "OSVersion",
    "DiskDeviceMapping",
    "TargetOSSRegionId",
    "LicenseType",
)
"""ImportImage's request parameters, in the order a job list's columns are documented."""

DISK_MAPPING_KEYS: tuple[str, ...] = ("OSSBucket", "OSSObject", "OSSRegion")
"""The keys of one DiskDeviceMapping entry, in the order the official SDK serialises them."""


def encode_disk_mapping(entries: list[Mapping[str, str]]) -> str:
    """Serialise DiskDeviceMapping exactly like the official SDK: compact JSON, SDK key order."""
    ordered = [{k: e[k] for k in DISK_MAPPING_KEYS if e.get(k) is not None} for e in entries]
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Job:
    """One valid ImportImage request and its place in the job list."""

    source: str
    """The job list file as the user named it."""
    line: int
    """Physical line (1-based) where the row starts."""
    params: tuple[tuple[str, str], ...]
    """Wire-ready parameters in ``PARAMETERS`` order, empty ones left out; DiskDeviceMapping
    already encoded with ``encode_disk_mapping``."""

    @property
    def name(self) -> str:
        """The job key: its ImageName."""
        return self.params[0][1]

    def query(self) -> dict[str, str]:
        """The ImportImage query parameters."""
        return dict(self.params)

    @property
    def fingerprint(self) -> str:
        """A hash of every request parameter; a changed row gets a new fingerprint."""
        blob = "\x1f".join(f"{k}\x1e{v}" for k, v in self.params)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]

    @property
    def location(self) -> str:
        """``FILE:LINE`` for messages."""
        return f"{self.source}:{self.line}"
