"""The official SDK, sync and async, calls the simulator over a real socket and every call succeeds."""

from __future__ import annotations

import re

import pytest
from alibabacloud_ens20171110 import models
from alibabacloud_tea_openapi.exceptions import ClientException

from pipeline.simulator import Simulator, SimulatorConfig, SimulatorThread, serve_simulator
from tests.simulator_fixtures import RUNTIME, sdk_client, sdk_import_request, simulator, simulator_thread

__all__ = ["simulator", "simulator_thread"]

IMAGE_ID = re.compile(r"m-[a-z0-9]{25}")
REQUEST_ID = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}")

AWKWARD = {
    "ossbucket": "b k*t",
    "ossobject": "dir/a b(1)!'~,:+.qcow2",
    "disk_device_mapping": [
        models.ImportImageRequestDiskDeviceMapping(
            ossbucket="b2", ossobject="o 2*()", ossregion="cn-beijing"),
    ],
    "license_type": "BYOL",
    "platform": "centos",
    "osversion": "7.6 LTS",
    "target_ossregion_id": "cn-beijing",
}
"""Values whose encodings differ between the sync and async clients (ens-api.md §2.3)."""


def test_sync_client_import_describe_delete(simulator_thread: SimulatorThread) -> None:
    """The sync client's ImportImage, DescribeSelfImages, DescribeImages and DeleteImage all succeed."""
    client = sdk_client(simulator_thread.endpoint)
    imported = client.import_image_with_options(sdk_import_request("sync-1", **AWKWARD), RUNTIME)
    assert IMAGE_ID.fullmatch(imported.body.image_id)
    assert REQUEST_ID.fullmatch(imported.body.request_id)

    mine = client.describe_self_images_with_options(
        models.DescribeSelfImagesRequest(image_name="sync-1"), RUNTIME).body
    assert mine.code == 0
    assert [(i.image_id, i.status) for i in mine.images.image] == [(imported.body.image_id, "Available")]

    listed = client.describe_images_with_options(
        models.DescribeImagesRequest(image_id=imported.body.image_id), RUNTIME).body
    assert [i.image_name for i in listed.images.image] == ["sync-1"]

    deleted = client.delete_image_with_options(
        models.DeleteImageRequest(image_id=imported.body.image_id), RUNTIME).body
    assert deleted.code == 0
    assert simulator_thread.images() == []


def test_sync_client_parameters_arrive_decoded(simulator_thread: SimulatorThread) -> None:
    """Every parameter the sync client sends is stored exactly as the caller gave it."""
    client = sdk_client(simulator_thread.endpoint)
    client.import_image_with_options(sdk_import_request("sync-2", **AWKWARD), RUNTIME)
    (image,) = simulator_thread.images()
    assert image["Params"]["OSSObject"] == "dir/a b(1)!'~,:+.qcow2"
    assert image["Params"]["DiskDeviceMapping"] == (
        '[{"OSSBucket":"b2","OSSObject":"o 2*()","OSSRegion":"cn-beijing"}]'
    )


@pytest.mark.asyncio
async def test_async_client_import_describe_delete(simulator: Simulator) -> None:
    """The async client (aiohttp, its own URL encoding) passes verification for every action."""
    client = sdk_client(simulator.endpoint)
    imported = await client.import_image_with_options_async(sdk_import_request("async-1", **AWKWARD), RUNTIME)
    assert IMAGE_ID.fullmatch(imported.body.image_id)
    assert simulator.images()[0]["Params"]["OSSObject"] == "dir/a b(1)!'~,:+.qcow2"

    mine = await client.describe_self_images_with_options_async(
        models.DescribeSelfImagesRequest(image_id=imported.body.image_id), RUNTIME)
    assert mine.body.images.image[0].status == "Available"
    listed = await client.describe_images_with_options_async(
        models.DescribeImagesRequest(image_name="async"), RUNTIME)
    assert listed.body.total_count == 1
    deleted = await client.delete_image_with_options_async(
        models.DeleteImageRequest(image_id=imported.body.image_id), RUNTIME)
    assert deleted.body.code == 0
    assert simulator.stats()["requests"] == {
        "DeleteImage": {"ok": 1}, "DescribeImages": {"ok": 1}, "DescribeSelfImages": {"ok": 1},
        "ImportImage": {"ok": 1},
    }


@pytest.mark.asyncio
async def test_async_client_with_sts_token_when_configured() -> None:
    """An STS token the simulator is configured with is accepted (it is sent signed)."""
    config = SimulatorConfig(access_key_id="STS.key", access_key_secret="s3cret", security_token="tok")
    async with serve_simulator(config) as sim:
        client = sdk_client(sim.endpoint, key_id="STS.key", secret="s3cret", security_token="tok")
        imported = await client.import_image_with_options_async(sdk_import_request(), RUNTIME)
        assert IMAGE_ID.fullmatch(imported.body.image_id)


@pytest.mark.asyncio
async def test_sdk_sees_gateway_errors_as_client_exceptions(simulator: Simulator) -> None:
    """A wrong secret surfaces in the SDK as ClientException SignatureDoesNotMatch, HTTP 400."""
    client = sdk_client(simulator.endpoint, secret="not-the-secret")
    with pytest.raises(ClientException) as caught:
        await client.import_image_with_options_async(sdk_import_request(), RUNTIME)
    assert (caught.value.code, caught.value.status_code) == ("SignatureDoesNotMatch", 400)
    assert simulator.images() == []


def test_sdk_sees_validation_errors(simulator_thread: SimulatorThread) -> None:
    """A name breaking the ImageName rule is InvalidParameter.ImageName for the SDK too."""
    client = sdk_client(simulator_thread.endpoint)
    with pytest.raises(ClientException) as caught:
        client.import_image_with_options(sdk_import_request("1abc"), RUNTIME)
    assert caught.value.code == "InvalidParameter.ImageName"
