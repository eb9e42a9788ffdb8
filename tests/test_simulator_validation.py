"""ImportImage validation and the Describe*/DeleteImage actions answer like ENS (§1, §4)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import httpx
import pytest

from pipeline.simulator import SimulatorConfig
from pipeline.simulator.images import new_image_id
from pipeline.simulator.validation import RULES, validate_import
from tests.simulator_fixtures import VALID, call, error_code, in_process

HOST = "ens.test"
ROOT = Path(__file__).resolve().parent.parent


def test_rules_equal_default_toml() -> None:
    """The compiled-in enumerations are exactly config/default.toml's [rules]."""
    rules = tomllib.loads((ROOT / "config" / "default.toml").read_text("utf-8"))["rules"]
    assert {k: tuple(v) for k, v in rules.items()} == dict(RULES)


def test_image_ids_look_like_ens_ids() -> None:
    """ImageId is m- plus 25 lowercase letters and digits, and they do not repeat."""
    ids = {new_image_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"m-[a-z0-9]{25}", i) for i in ids)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"ImageName": None}, "MissingParameter"),
        ({"ImageName": ""}, "MissingParameter"),
        ({"ComputeType": None}, "MissingParameter"),
        ({"OSType": None}, "MissingParameter"),
        ({"ImageFormat": None}, "MissingParameter"),
        ({"Architecture": None}, "MissingParameter"),
        ({"ImageName": "1abc"}, "InvalidParameter.ImageName"),
        ({"ImageName": "a"}, "InvalidParameter.ImageName"),
        ({"ImageName": "a" * 129}, "InvalidParameter.ImageName"),
        ({"ImageName": "has.dot"}, "InvalidParameter.ImageName"),
        ({"ImageName": "has space"}, "InvalidParameter.ImageName"),
        ({"ImageName": "http://x"}, "InvalidParameter.ImageName"),
        ({"ComputeType": "bare_metal"}, "InvalidParameter.ComputeType"),
        ({"OSType": "freebsd"}, "InvalidParameter.OSType"),
        ({"ImageFormat": "raw"}, "InvalidParameter.ImageFormat"),
        ({"Architecture": "arm64"}, "InvalidParameter.Architecture"),
        ({"Platform": "gentoo"}, "InvalidParameter.Platform"),
        ({"LicenseType": "byol"}, "InvalidParameter.LicenseType"),
        ({"OSSRegion": "cn-hangzhou"}, "InvalidParameter.OSSRegion"),
        ({"TargetOSSRegionId": "us-east-1"}, "InvalidParameter.TargetOSSRegionId"),
        ({"OSSBucket": None, "OSSObject": None}, "MissingParameter"),
        ({"OSSObject": None}, "MissingParameter"),
        ({"OSSBucket": None, "OSSObject": None, "DiskDeviceMapping": "[]"}, "MissingParameter"),
        ({"DiskDeviceMapping": "{not json"}, "InvalidParameter.DiskDeviceMapping"),
        ({"DiskDeviceMapping": '{"OSSBucket":"b"}'}, "InvalidParameter.DiskDeviceMapping"),
        ({"DiskDeviceMapping": '[{"OSSBucket":"b"}]'}, "InvalidParameter.DiskDeviceMapping"),
        ({"DiskDeviceMapping": '[{"OSSBucket":"b","OSSObject":"o","Size":"2"}]'},
         "InvalidParameter.DiskDeviceMapping"),
    ],
)
def test_invalid_requests_get_the_documented_code(change: dict[str, str | None], code: str) -> None:
    """Each broken rule maps to MissingParameter or InvalidParameter.<Field>."""
    params = {k: v for k, v in {**VALID, **change}.items() if v is not None}
    problem = validate_import(params)
    assert problem is not None
    assert problem.code == code


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"ImageName": "镜像名称"},
        {"ImageName": "Ab:c_d-9"},
        {"ImageName": "a" * 128},
        {"OSType": "windows", "Platform": "ubuntu", "LicenseType": "BYOL"},
        {"OSSBucket": None, "OSSObject": None,
         "DiskDeviceMapping": json.dumps([{"OSSBucket": "b", "OSSObject": "o", "OSSRegion": "cn-beijing"}])},
    ],
)
def test_valid_requests_pass(change: dict[str, str | None]) -> None:
    """Names with Chinese characters, the allowed punctuation and either source form are valid."""
    params = {k: v for k, v in {**VALID, **change}.items() if v is not None}
    assert validate_import(params) is None


@pytest.mark.asyncio
async def test_invalid_import_is_400_and_creates_nothing() -> None:
    """Over HTTP a validation failure is a 400 error body, and no image exists afterwards."""
    client, state = in_process()
    async with client:
        response = await call(client, HOST, params={**VALID, "ImageName": "9lives"})
    assert (response.status_code, error_code(response)) == (400, "InvalidParameter.ImageName")
    assert "9lives" in response.json()["Message"]
    assert len(state.images) == 0
    assert state.stats_snapshot()["requests"] == {"ImportImage": {"InvalidParameter.ImageName": 1}}


@pytest.mark.asyncio
async def test_duplicate_names_are_allowed_and_counted() -> None:
    """Two imports of one name create two images; the counters show the double import."""
    client, state = in_process()
    async with client:
        for _ in range(2):
            assert (await call(client, HOST)).status_code == 200
    assert len(state.images) == 2
    assert state.stats_snapshot()["duplicate_names"] == {"centos-7": 2}


async def _import_names(client: httpx.AsyncClient, names: list[str]) -> None:
    for name in names:
        response = await call(client, HOST, params={**VALID, "ImageName": name})
        assert response.status_code == 200


@pytest.mark.asyncio
async def test_describe_self_images_pages_and_filters() -> None:
    """DescribeSelfImages: substring ImageName filter, PageSize/PageNumber paging, Status on each."""
    client, _ = in_process()
    async with client:
        await _import_names(client, [f"web-{i:02d}" for i in range(12)] + ["db-1"])
        paging = {"ImageName": "web", "PageSize": "5", "PageNumber": "2"}
        page2 = (await call(client, HOST, "DescribeSelfImages", paging)).json()
    assert {k: page2[k] for k in ("Code", "PageNumber", "PageSize", "TotalCount")} == {
        "Code": 0, "PageNumber": "2", "PageSize": "5", "TotalCount": "12"}
    assert [i["ImageName"] for i in page2["Images"]["Image"]] == [f"web-{i:02d}" for i in range(6, 1, -1)]
    assert all(i["Status"] == "Available" for i in page2["Images"]["Image"])


@pytest.mark.asyncio
async def test_describe_images_has_no_status_and_exact_image_id() -> None:
    """DescribeImages filters by exact ImageId and carries no per-image Status."""
    client, state = in_process()
    async with client:
        await _import_names(client, ["alpha", "beta"])
        image_id = state.images_snapshot()[0]["ImageId"]
        body = (await call(client, HOST, "DescribeImages", {"ImageId": image_id})).json()
        partial = (await call(client, HOST, "DescribeImages", {"ImageId": image_id[:6]})).json()
    assert [i["ImageName"] for i in body["Images"]["Image"]] == ["alpha"]
    assert "Status" not in body["Images"]["Image"][0]
    assert partial["TotalCount"] == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(("page_size", "page_number"), [("51", "1"), ("0", "1"), ("x", "1"), ("10", "0")])
async def test_describe_rejects_bad_paging(page_size: str, page_number: str) -> None:
    """PageSize outside 1..50 or a PageNumber below 1 is InvalidParameter.<Field>."""
    client, _ = in_process()
    async with client:
        response = await call(
            client, HOST, "DescribeSelfImages", {"PageSize": page_size, "PageNumber": page_number})
    assert response.status_code == 400
    assert error_code(response) in ("InvalidParameter.PageSize", "InvalidParameter.PageNumber")


@pytest.mark.asyncio
async def test_delete_image_rules() -> None:
    """DeleteImage needs ImageId, refuses unknown ids and images still Creating."""
    client, state = in_process(SimulatorConfig(available_after=3600))
    async with client:
        await _import_names(client, ["slow"])
        image_id = state.images_snapshot()[0]["ImageId"]
        missing = await call(client, HOST, "DeleteImage", {})
        unknown = await call(client, HOST, "DeleteImage", {"ImageId": "m-nope"})
        creating = await call(client, HOST, "DeleteImage", {"ImageId": image_id})
    assert [error_code(r) for r in (missing, unknown, creating)] == [
        "MissingParameter", "InvalidParameter.ImageId", "IncorrectStatus.Image"]
    assert len(state.images) == 1
