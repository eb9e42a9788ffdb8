"""Every field of every answer has the name and type the official SDK's response models declare.

The oracle is ``alibabacloud_ens20171110.models``: each model's ``__init__`` annotations give the
types, its ``to_map`` gives the wire names. An answer must carry exactly the declared fields (none
missing, none extra), each in its declared type, recursively (issue #14: PageNumber, PageSize and
TotalCount of DescribeSelfImages are strings, of DescribeImages integers).
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

import httpx
import pytest
from alibabacloud_ens20171110 import models
from darabonba.model import DaraModel

from pipeline.simulator import Simulator
from tests.simulator_fixtures import VALID, call, simulator

__all__ = ["simulator"]


class _Marker:
    """Stands in for a nested model while ``to_map`` is asked for wire names."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def to_map(self) -> str:
        return self.tag


def declared(cls: type[DaraModel]) -> dict[str, Any]:
    """Wire name -> declared type (a Python type, a model class, or ``list[model]``)."""
    hints = typing.get_type_hints(cls.__init__, vars(inspect.getmodule(cls)))
    hints.pop("return", None)
    model = cls()
    for attr, hint in hints.items():
        nested = typing.get_args(hint)
        setattr(model, attr, [_Marker(attr)] if nested else _Marker(attr) if _is_model(hint) else f"@{attr}")
    wire: dict[str, Any] = {}
    for key, value in model.to_map().items():
        attr = value[0] if isinstance(value, list) else value
        name = attr[1:] if attr.startswith("@") else attr
        wire[key] = hints[name]
    return wire


def _is_model(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, DaraModel)


def mismatches(value: Any, cls: type[DaraModel], path: str = "") -> list[str]:
    """Every way ``value`` (decoded JSON) differs from model ``cls``'s declared fields and types."""
    if not isinstance(value, dict):
        return [f"{path or '<body>'}: {type(value).__name__}, the model declares an object"]
    fields = declared(cls)
    problems = [f"{path}{k}: not in {cls.__name__}" for k in sorted(set(value) - set(fields))]
    problems += [f"{path}{k}: declared in {cls.__name__}, missing" for k in sorted(set(fields) - set(value))]
    for key in sorted(set(fields) & set(value)):
        hint, item = fields[key], value[key]
        here = f"{path}{key}"
        if typing.get_origin(hint) in (list, typing.List):  # noqa: UP006
            (inner,) = typing.get_args(hint)
            if not isinstance(item, list):
                problems.append(f"{here}: {type(item).__name__}, declared a list")
                continue
            for n, element in enumerate(item):
                problems += mismatches(element, inner, f"{here}[{n}].")
        elif _is_model(hint):
            problems += mismatches(item, hint, f"{here}.")
        elif type(item) is not hint:
            problems.append(f"{here}: {type(item).__name__} {item!r}, declared {hint.__name__}")
    return problems


ACTIONS: dict[str, type[DaraModel]] = {
    "ImportImage": models.ImportImageResponseBody,
    "DescribeSelfImages": models.DescribeSelfImagesResponseBody,
    "DescribeImages": models.DescribeImagesResponseBody,
    "DeleteImage": models.DeleteImageResponseBody,
}


def test_oracle_reads_the_models() -> None:
    """The oracle itself: the wire names and types it reads from the models are the known ones."""
    self_images = declared(models.DescribeSelfImagesResponseBody)
    assert {k: self_images[k] for k in ("Code", "PageNumber", "PageSize", "TotalCount")} == {
        "Code": int, "PageNumber": str, "PageSize": str, "TotalCount": str}
    assert declared(models.DescribeImagesResponseBody)["TotalCount"] is int
    assert mismatches({"Code": "0", "RequestId": "r"}, models.DeleteImageResponseBody) == [
        "Code: str '0', declared int"]


@pytest.mark.asyncio
async def test_every_answer_matches_the_sdk_models(simulator: Simulator) -> None:
    """ImportImage, DescribeSelfImages, DescribeImages and DeleteImage answers, field by field."""
    async with httpx.AsyncClient(base_url=simulator.url) as client:
        host = simulator.endpoint
        mapping = '[{"OSSBucket":"b","OSSObject":"o","OSSRegion":"cn-beijing"}]'
        imported = await call(client, host, params={**VALID, "DiskDeviceMapping": mapping})
        image_id = imported.json()["ImageId"]
        answers: dict[str, Any] = {
            "ImportImage": imported.json(),
            "DescribeSelfImages": (await call(client, host, "DescribeSelfImages", {"PageSize": "5"})).json(),
            "DescribeImages": (await call(client, host, "DescribeImages", {"ImageId": image_id})).json(),
            "DeleteImage": (await call(client, host, "DeleteImage", {"ImageId": image_id})).json(),
        }
    assert len(answers["DescribeSelfImages"]["Images"]["Image"]) == 1
    assert len(answers["DescribeImages"]["Images"]["Image"]) == 1
    assert {action: mismatches(body, ACTIONS[action]) for action, body in answers.items()} == {
        action: [] for action in ACTIONS}
