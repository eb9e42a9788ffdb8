"""OSS test helpers: object lines for the simulated OSS, a bucket catalogue with every odd key."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path

import httpx

QCOW2 = b"QFI\xfb\x00\x00\x00\x03"


def object_line(bucket: str, key: str, size: int = 1 << 20, first: bytes | None = None) -> str:
    """One ``--oss-objects`` line."""
    row: dict[str, object] = {"bucket": bucket, "key": key, "size": size}
    if first is not None:
        row["first_bytes"] = base64.b64encode(first).decode()
    return json.dumps(row, ensure_ascii=False)


def write_objects(path: Path, lines: Iterable[str]) -> Path:
    """Write an objects file."""
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def catalogue(bucket: str, count: int = 1000) -> tuple[list[str], set[str]]:
    """``count`` object lines under ``images/`` with every awkward case, and the keys discover must
    emit (qcow2, not empty, not colliding)."""
    lines: list[str] = []
    good: set[str] = set()
    special = [
        ("images/odd/with space.qcow2", True), ("images/odd/plus+sign.qcow2", True),
        ("images/odd/per%cent.qcow2", True), ("images/odd/镜像 中文.qcow2", True),
        ("images/odd/" + "long-" * 40 + "a.qcow2", True), ("images/odd/" + "long-" * 40 + "b.qcow2", True),
        ("images/dup/x y.qcow2", False), ("images/dup/x+y.qcow2", False),
        ("images/odd/checksum.qcow2.sha256", False), ("images/odd/notes.txt", False),
        ("images/odd/raw disk.raw", False), ("images/odd/folder/", False),
        ("images/odd/9-starts-with-digit.qcow2", True),
    ]
    for key, keep in special:
        lines.append(object_line(bucket, key, 0 if key.endswith("/") else 1 << 20))
        if keep:
            good.add(key)
    lines.append(object_line(bucket, "images/odd/empty.qcow2", 0))
    index = 0
    while len(lines) < count:
        depth = index % 4
        folder = "/".join(f"level{d}-{index % (7 + d)}" for d in range(depth))
        key = f"images/{folder + '/' if folder else ''}disk-{index:04d}.qcow2"
        if index % 10 == 9:
            key = key[:-len(".qcow2")] + ".vmdk"
        else:
            good.add(key)
        lines.append(object_line(bucket, key))
        index += 1
    return lines, good


def add_objects(url: str, lines: Iterable[str]) -> int:
    """POST more objects to a running simulator."""
    answer = httpx.post(f"{url}/_sim/oss/objects", content="\n".join(lines).encode(), timeout=10)
    answer.raise_for_status()
    added: int = answer.json()["Added"]
    return added


def oss_calls(url: str) -> dict[str, object]:
    """``/_sim/oss``: calls by operation and the arrival times of heads and gets."""
    data: dict[str, object] = httpx.get(f"{url}/_sim/oss", timeout=10).json()
    return data
