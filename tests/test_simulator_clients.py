"""Every client users already have works against the simulator over a real socket (issue #14).

The official SDK signing V3 (ACS3-HMAC-SHA256), ACS3-HMAC-SM3 and the older RPC V2 (HMAC-SHA1);
the legacy ``aliyun-python-sdk-core`` + ``aliyun-python-sdk-ens`` with GET and with POST (query and
form body); and the aliyun CLI's wire form, built by hand (the CLI is a Go binary, not on PyPI).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from alibabacloud_ens20171110 import models
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.request import CommonRequest
from aliyunsdkens.request.v20171110 import (
    DeleteImageRequest,
    DescribeImagesRequest,
    DescribeSelfImagesRequest,
    ImportImageRequest,
)

from pipeline.simulator import SimulatorConfig, SimulatorThread
from tests.client_fixtures import (
    FORM_HEADERS,
    MODES,
    legacy_call,
    legacy_client,
    rpc_params,
    rpc_query,
    sdk_client_in,
)
from tests.simulator_fixtures import RUNTIME, VALID, sdk_import_request

AWKWARD_OBJECT = "dir/a b(1)!'~,:+*.qcow2"
MAPPING = '[{"OSSBucket":"b2","OSSObject":"o 2*()","OSSRegion":"cn-beijing"}]'


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    """A simulator in its own thread (the SDKs here are synchronous)."""
    with SimulatorThread(SimulatorConfig(available_after=0, seed=1)) as running:
        yield running


def _params_of(sim: SimulatorThread, name: str) -> dict[str, str]:
    (image,) = [i for i in sim.images() if i["ImageName"] == name]
    return dict(image["Params"])


@pytest.mark.parametrize("mode", list(MODES))
def test_official_sdk_every_action(sim: SimulatorThread, mode: str) -> None:
    """ImportImage, DescribeSelfImages paged, DescribeImages and DeleteImage in V3, SM3 and V2."""
    client = sdk_client_in(mode, sim.endpoint)
    mapping = [models.ImportImageRequestDiskDeviceMapping(ossbucket="b2", ossobject="o 2*()",
                                                          ossregion="cn-beijing")]
    imported = client.import_image_with_options(sdk_import_request(
        f"{mode}-first", ossobject=AWKWARD_OBJECT, osversion="7.6 LTS", disk_device_mapping=mapping,
    ), RUNTIME).body
    assert _params_of(sim, f"{mode}-first") == {
        **VALID, "ImageName": f"{mode}-first", "OSSObject": AWKWARD_OBJECT, "OSVersion": "7.6 LTS",
        "DiskDeviceMapping": MAPPING,
    }
    for n in range(1, 6):
        client.import_image_with_options(sdk_import_request(f"{mode}-page-{n}"), RUNTIME)

    page = client.describe_self_images_with_options(models.DescribeSelfImagesRequest(
        image_name=f"{mode}-page", page_size=2, page_number=2), RUNTIME).body
    assert (page.total_count, page.page_number, page.page_size) == ("5", "2", "2")
    assert [i.image_name for i in page.images.image] == [f"{mode}-page-3", f"{mode}-page-2"]
    assert {i.status for i in page.images.image} == {"Available"}

    listed = client.describe_images_with_options(
        models.DescribeImagesRequest(image_id=imported.image_id), RUNTIME).body
    assert (listed.total_count, [i.image_name for i in listed.images.image]) == (1, [f"{mode}-first"])

    deleted = client.delete_image_with_options(models.DeleteImageRequest(image_id=imported.image_id),
                                               RUNTIME).body
    assert deleted.code == 0
    assert f"{mode}-first" not in {i["ImageName"] for i in sim.images()}
    assert sim.stats()["requests"] == {
        "ImportImage": {"ok": 6}, "DescribeSelfImages": {"ok": 1}, "DescribeImages": {"ok": 1},
        "DeleteImage": {"ok": 1},
    }


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_legacy_sdk_every_action(sim: SimulatorThread, method: str) -> None:
    """The legacy SDK's request classes, sent with GET and with POST: all accepted, params intact."""
    client = legacy_client(sim.simulator.port)
    names = [f"legacy-{method.lower()}-{n}" for n in range(4)]
    for name in names:
        request = ImportImageRequest.ImportImageRequest()
        request.set_ImageName(name)
        request.set_ComputeType("ens_vm")
        request.set_OSType("linux")
        request.set_ImageFormat("qcow2")
        request.set_Architecture("x86_64")
        request.set_OSSBucket("bucket")
        request.set_OSSObject(AWKWARD_OBJECT)
        request.set_OSSRegion("cn-beijing")
        request.set_DiskDeviceMapping(MAPPING)
        answer = legacy_call(client, request, method)
        assert answer["ImageId"].startswith("m-")
    assert _params_of(sim, names[0]) == {
        **VALID, "ImageName": names[0], "OSSObject": AWKWARD_OBJECT, "DiskDeviceMapping": MAPPING,
    }

    paged = DescribeSelfImagesRequest.DescribeSelfImagesRequest()
    paged.set_ImageName(f"legacy-{method.lower()}")
    paged.set_PageSize(3)
    paged.set_PageNumber(2)
    page = legacy_call(client, paged, method)
    assert (page["TotalCount"], page["PageNumber"], page["PageSize"]) == ("4", "2", "3")
    assert [i["ImageName"] for i in page["Images"]["Image"]] == [names[0]]

    described = DescribeImagesRequest.DescribeImagesRequest()
    described.set_ImageId(answer["ImageId"])
    assert [i["ImageName"] for i in legacy_call(client, described, method)["Images"]["Image"]] == [names[-1]]

    delete = DeleteImageRequest.DeleteImageRequest()
    delete.set_ImageId(answer["ImageId"])
    assert legacy_call(client, delete, method)["Code"] == 0
    assert len(sim.images()) == 3


def test_legacy_common_request_form_body_and_flat_lists(sim: SimulatorThread) -> None:
    """CommonRequest with the parameters in a form body and DiskDeviceMapping.N.Field flattened."""
    client = legacy_client(sim.simulator.port)
    request = CommonRequest(domain="127.0.0.1", version="2017-11-10", action_name="ImportImage")
    for key, value in {**VALID, "ImageName": "legacy-form", "OSSObject": AWKWARD_OBJECT}.items():
        request.add_body_params(key, value)
    request.add_query_param("DiskDeviceMapping.1.OSSBucket", "b2")
    request.add_query_param("DiskDeviceMapping.1.OSSObject", "o 2*()")
    request.add_query_param("DiskDeviceMapping.1.OSSRegion", "cn-beijing")
    request.add_query_param("DiskDeviceMapping.2.OSSBucket", "b3")
    request.add_query_param("DiskDeviceMapping.2.OSSObject", "data.qcow2")
    assert legacy_call(client, request, "POST")["ImageId"].startswith("m-")
    params = _params_of(sim, "legacy-form")
    assert json.loads(params.pop("DiskDeviceMapping")) == [
        {"OSSBucket": "b2", "OSSObject": "o 2*()", "OSSRegion": "cn-beijing"},
        {"OSSBucket": "b3", "OSSObject": "data.qcow2"},
    ]
    assert params == {**VALID, "ImageName": "legacy-form", "OSSObject": AWKWARD_OBJECT}


def test_legacy_sdk_sees_signature_errors(sim: SimulatorThread) -> None:
    """A wrong secret through the legacy SDK: InvalidAccessKeySecret, HTTP 400.

    The legacy SDK turns SignatureDoesNotMatch into InvalidAccessKeySecret when the server's string to
    sign (in the message) equals its own: so the simulator's string to sign is the client's.
    """
    client = legacy_client(sim.simulator.port, secret="guessed")
    request = DescribeSelfImagesRequest.DescribeSelfImagesRequest()
    with pytest.raises(ServerException) as caught:
        legacy_call(client, request, "GET")
    assert (caught.value.get_error_code(), caught.value.get_http_status()) == ("InvalidAccessKeySecret", 400)


# The aliyun CLI (`aliyun ens ImportImage --ImageName ... --endpoint 127.0.0.1:PORT --protocol http`)
# signs with the Go SDK: every common parameter and the Signature in the query, a form Content-Type,
# an empty SignatureType, RegionId, lists as DiskDeviceMapping.N.Field. These requests are built the same way.


def test_cli_wire_form_import_and_describe(sim: SimulatorThread) -> None:
    """The CLI's wire form: POST, everything in the query, flat lists, an empty form body."""
    business = {**VALID, "ImageName": "cli-1", "DiskDeviceMapping.1.OSSBucket": "b2",
                "DiskDeviceMapping.1.OSSObject": "o 2"}
    with httpx.Client(base_url=sim.url) as http:
        imported = http.post(f"/?{rpc_query(rpc_params('ImportImage', business))}", headers=FORM_HEADERS)
        describe = rpc_params("DescribeSelfImages", {"ImageName": "cli"}, method="GET")
        listed = http.get(f"/?{rpc_query(describe)}")
    assert imported.status_code == 200, imported.text
    assert listed.json()["Images"]["Image"][0]["ImageId"] == imported.json()["ImageId"]
    params = _params_of(sim, "cli-1")
    assert json.loads(params.pop("DiskDeviceMapping")) == [{"OSSBucket": "b2", "OSSObject": "o 2"}]
    assert params == {**VALID, "ImageName": "cli-1"}


def test_rpc_signature_in_the_form_body(sim: SimulatorThread) -> None:
    """Node pop-core's POST form: every parameter, Signature too, in the form body; the query empty."""
    signed = rpc_params("ImportImage", {**VALID, "ImageName": "body-signed"}, cli_extras=False)
    with httpx.Client(base_url=sim.url) as http:
        response = http.post("/", content=rpc_query(signed).encode(), headers=FORM_HEADERS)
    assert response.status_code == 200, response.text
    assert _params_of(sim, "body-signed") == {**VALID, "ImageName": "body-signed"}
