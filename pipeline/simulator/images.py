"""The images the simulator holds: records, lifecycle, lookups and the Describe* shapes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 25


def new_image_id() -> str:
    """``m-`` plus 25 random lowercase letters and digits (128 random bits fit in 25 base-36 digits)."""
    n = int.from_bytes(os.urandom(16), "big")
    chars = []
    for _ in range(ID_LENGTH):
        n, r = divmod(n, 36)
        chars.append(ALPHABET[r])
    return "m-" + "".join(chars)


def iso(moment: float) -> str:
    """ENS timestamps: UTC, second precision, ``Z`` suffix."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Image:
    """One imported image and every parameter its ImportImage carried."""

    image_id: str
    name: str
    params: tuple[tuple[str, str], ...]
    created_at: float
    """Wall-clock seconds since the epoch."""
    ready_at: float
    """When ``Creating`` ends."""
    final_status: str
    """``Available``, ``Pack_failed`` or ``Upload_failed``."""
    request_id: str

    def status(self, now: float) -> str:
        """The status at wall time ``now``."""
        return "Creating" if now < self.ready_at else self.final_status

    def param(self, name: str, default: str = "") -> str:
        """One request parameter."""
        for key, value in self.params:
            if key == name:
                return value
        return default

    def to_json(self) -> dict[str, Any]:
        """The persisted form."""
        return {
            "ImageId": self.image_id, "ImageName": self.name, "Params": dict(self.params),
            "CreatedAt": self.created_at, "ReadyAt": self.ready_at, "FinalStatus": self.final_status,
            "RequestId": self.request_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Image:
        """Back from ``to_json``."""
        return cls(
            image_id=str(data["ImageId"]), name=str(data["ImageName"]),
            params=tuple((str(k), str(v)) for k, v in dict(data["Params"]).items()),
            created_at=float(data["CreatedAt"]), ready_at=float(data["ReadyAt"]),
            final_status=str(data["FinalStatus"]), request_id=str(data["RequestId"]),
        )

    def inspect(self, now: float) -> dict[str, Any]:
        """The ``/_sim/images`` entry."""
        return {
            "ImageId": self.image_id, "ImageName": self.name, "Status": self.status(now),
            "CreationTime": iso(self.created_at), "RequestId": self.request_id, "Params": dict(self.params),
        }

    def describe(self, *, with_status: bool, now: float) -> dict[str, Any]:
        """The ``Images.Image[]`` entry of DescribeImages, or of DescribeSelfImages (``with_status``)."""
        image_format = self.param("ImageFormat", "qcow2")
        entry: dict[str, Any] = {
            "Architecture": self.param("Architecture"),
            "CreationTime": iso(self.created_at),
            "ImageId": self.image_id,
            "ImageName": self.name,
            "ImageOwnerAlias": "self",
            "ImageSize": "20",
            "Platform": self.param("Platform", "centos"),
            "RegionId": self.param("TargetOSSRegionId") or self.param("OSSRegion") or "cn-beijing",
            "SnapshotId": "",
            "DiskDeviceMappings": {"DiskDeviceMapping": [
                {"Format": image_format, "Size": "20", "Type": "system", "imageId": self.image_id},
            ]},
        }
        if with_status:
            entry.update({
                "ComputeType": self.param("ComputeType"), "ImageStorageSize": "20", "InstanceId": "",
                "OsVersion": self.param("OSVersion"), "Status": self.status(now),
            })
        return entry


class ImageStore:
    """Images by id in creation order; duplicate names are allowed (so double imports show)."""

    def __init__(self) -> None:
        self._images: dict[str, Image] = {}
        self.version = 0
        """Bumped on every change; the persister writes when it moves."""

    def __len__(self) -> int:
        return len(self._images)

    def __iter__(self) -> Iterator[Image]:
        return iter(list(self._images.values()))

    def get(self, image_id: str) -> Image | None:
        """One image by exact id."""
        return self._images.get(image_id)

    def add(self, image: Image) -> None:
        """Store a new image."""
        self._images[image.image_id] = image
        self.version += 1

    def remove(self, image_id: str) -> None:
        """Forget an image."""
        del self._images[image_id]
        self.version += 1

    def clear(self) -> None:
        """Forget every image."""
        self._images.clear()
        self.version += 1

    def newest_first(self) -> list[Image]:
        """Every image, newest first (the order ENS lists them in)."""
        return list(reversed(self._images.values()))

    def dump(self) -> bytes:
        """The state file's content."""
        data = {"version": 1, "images": [image.to_json() for image in self._images.values()]}
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def load(self, blob: bytes) -> None:
        """Replace the images with a state file's content."""
        data = json.loads(blob)
        self._images = {img.image_id: img for img in map(Image.from_json, data.get("images", []))}
        self.version += 1
