"""ImportImage parameter validation with ENS's documented rules and error codes."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

RULES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "ComputeType": ("ens_vm",),
    "OSType": ("linux", "windows"),
    "ImageFormat": ("qcow2",),
    "Architecture": ("x86_64",),
    "Platform": ("centos", "ubuntu"),
    "LicenseType": ("Aliyun", "BYOL"),
    "OSSRegion": ("cn-beijing",),
    "TargetOSSRegionId": ("cn-beijing", "ap-southeast-1"),
})
"""The ``[rules]`` enumerations of ``config/default.toml``, compiled in (a test keeps them equal)."""

REQUIRED: tuple[str, ...] = ("ImageName", "ComputeType", "OSType", "ImageFormat", "Architecture")

# ens-api.md §1.2: a letter or Chinese character first, then letters, Chinese, digits, ':', '_', '-'.
IMAGE_NAME = re.compile(r"[A-Za-z\u4e00-\u9fff][A-Za-z0-9\u4e00-\u9fff:_-]{1,127}")

DISK_MAPPING_FIELDS = frozenset({"OSSBucket", "OSSObject", "OSSRegion"})


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why ENS refuses an ImportImage request: a ``MissingParameter`` or ``InvalidParameter.*`` code."""

    code: str
    message: str


def missing(field: str) -> Invalid:
    """``MissingParameter`` naming the absent field."""
    return Invalid(
        "MissingParameter",
        f"The input parameter \"{field}\" that is mandatory for processing this request is not supplied.",
    )


def invalid(field: str, detail: str) -> Invalid:
    """``InvalidParameter.<field>`` with the documented message and what was wrong."""
    return Invalid(
        f"InvalidParameter.{field}",
        f"The specified field {field} invalid. Please check it again. ({detail})",
    )


def validate_import(params: Mapping[str, str]) -> Invalid | None:
    """None when ENS would accept these ImportImage parameters; an empty value counts as absent."""
    for name in REQUIRED:
        if not params.get(name):
            return missing(name)
    name = params["ImageName"]
    if name.lower().startswith(("http://", "https://")) or not IMAGE_NAME.fullmatch(name):
        return invalid(
            "ImageName",
            f"{name!r}: 2-128 characters, starting with a letter or a Chinese character, "
            "then letters, Chinese characters, digits, ':', '_' or '-'",
        )
    for field, allowed in RULES.items():
        value = params.get(field)
        if value and value not in allowed:
            return invalid(field, f"{value!r} is not one of {', '.join(allowed)}")
    return _validate_source(params)


def _validate_source(params: Mapping[str, str]) -> Invalid | None:
    raw = params.get("DiskDeviceMapping")
    entries: list[object] = []
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            return invalid("DiskDeviceMapping", "not a JSON array")
        if not isinstance(parsed, list):
            return invalid("DiskDeviceMapping", "not a JSON array")
        entries = parsed
    for index, entry in enumerate(entries, 1):
        problem = _disk_entry_problem(entry)
        if problem:
            return invalid("DiskDeviceMapping", f"entry {index}: {problem}")
    if entries:
        return None
    bucket, obj = params.get("OSSBucket"), params.get("OSSObject")
    if bucket and obj:
        return None
    if bucket:
        return missing("OSSObject")
    if obj:
        return missing("OSSBucket")
    return missing("OSSBucket")


def _disk_entry_problem(entry: object) -> str | None:
    if not isinstance(entry, dict):
        return "not a JSON object"
    extra = sorted(set(entry) - DISK_MAPPING_FIELDS)
    if extra:
        return f"unknown field {extra[0]!r}"
    for key in ("OSSBucket", "OSSObject"):
        value = entry.get(key)
        if not isinstance(value, str) or not value:
            return f"{key} is required"
    region = entry.get("OSSRegion")
    if region is not None and region not in RULES["OSSRegion"]:
        return f"OSSRegion {region!r} is not one of {', '.join(RULES['OSSRegion'])}"
    return None
