"""The simulated OSS against the official SDK V2 (alibabacloud-oss-v2): V4 signatures, listing, heads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import alibabacloud_oss_v2 as oss
import alibabacloud_oss_v2.aio as oss_aio
import pytest
import pytest_asyncio

from pipeline.ens.credentials import Credentials, StaticCredentials
from pipeline.oss.client import OssClient, OssError, oss_endpoint
from pipeline.simulator.config import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET, SimulatorConfig
from pipeline.simulator.server import Simulator, serve_simulator
from tests.oss_helpers import QCOW2, object_line, write_objects

KEYS = ["a/x y+z%.qcow2", "a/镜像 中文.qcow2", "a/deep/er/one.qcow2", "b/readme.txt"]


@pytest_asyncio.fixture
async def sim(tmp_path: Path) -> AsyncIterator[Simulator]:
    objects = write_objects(tmp_path / "objects.jsonl",
                            [object_line("bkt-one", k, 1000 + i, QCOW2) for i, k in enumerate(KEYS)])
    async with serve_simulator(SimulatorConfig(oss_objects=objects,
                                               oss_denied_buckets=frozenset({"locked-bkt"}))) as server:
        yield server


def sdk(url: str, secret: str = DEV_ACCESS_KEY_SECRET) -> oss_aio.AsyncClient:
    config = oss.config.load_default()
    config.credentials_provider = oss.credentials.StaticCredentialsProvider(DEV_ACCESS_KEY_ID, secret)
    config.region = "cn-beijing"
    config.endpoint = url
    config.use_path_style = True
    config.disable_ssl = True
    config.retry_max_attempts = 1
    return oss_aio.AsyncClient(config)


@pytest.mark.asyncio
async def test_the_official_sdk_lists_every_page_and_heads_objects(sim: Simulator) -> None:
    async with sdk(sim.url) as client:
        keys: list[str] = []
        paginator = client.list_objects_v2_paginator()
        async for page in paginator.iter_page(oss.ListObjectsV2Request(bucket="bkt-one", prefix="a/",
                                                                       max_keys=1, encoding_type="url")):
            keys.extend(str(o.key) for o in page.contents or ())
        assert keys == sorted(KEYS[:3])
        listed = await client.list_objects_v2(oss.ListObjectsV2Request(bucket="bkt-one", delimiter="/",
                                                                       prefix="a/"))
        assert [str(o.key) for o in listed.contents or ()] == ["a/x y+z%.qcow2", "a/镜像 中文.qcow2"]
        assert [p.prefix for p in listed.common_prefixes or ()] == ["a/deep/"]
        head = await client.head_object(oss.HeadObjectRequest(bucket="bkt-one", key="a/镜像 中文.qcow2"))
        assert head.content_length == 1001
        got = await client.get_object(oss.GetObjectRequest(bucket="bkt-one", key="a/x y+z%.qcow2",
                                                           range_header="bytes=0-3"))
        assert await got.body.read() == b"QFI\xfb"


@pytest.mark.asyncio
async def test_a_wrong_secret_is_refused(sim: Simulator) -> None:
    async with sdk(sim.url, secret="not-the-secret") as client:
        with pytest.raises(oss.exceptions.OperationError) as caught:
            await client.list_objects_v2(oss.ListObjectsV2Request(bucket="bkt-one"))
    inner = caught.value.unwrap()
    assert isinstance(inner, oss.exceptions.ServiceError)
    assert (inner.status_code, inner.code) == (403, "SignatureDoesNotMatch")
    assert sim.state.oss.calls["ListObjectsV2"] == 0


@pytest.mark.asyncio
async def test_our_client_heads_gets_and_tells_missing_from_denied(sim: Simulator) -> None:
    creds = StaticCredentials(Credentials(DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET))
    async with OssClient(creds, oss_endpoint("cn-beijing", sim.url), "cn-beijing", attempts=1) as client:
        found = await client.head("bkt-one", "a/deep/er/one.qcow2")
        assert found is not None
        assert found.size == 1002
        assert await client.head("bkt-one", "a/missing.qcow2") is None
        assert await client.first_bytes("bkt-one", "a/deep/er/one.qcow2") == b"QFI\xfb"
        with pytest.raises(OssError) as denied:
            await client.head("locked-bkt", "any.qcow2")
        assert denied.value.status == 403
        assert not denied.value.unreachable
        listed = [o.key async for o in client.iter_objects("bkt-one", "")]
        assert listed == sorted(KEYS)


async def _service_error(call: Awaitable[object]) -> oss.exceptions.ServiceError:
    with pytest.raises(oss.exceptions.OperationError) as caught:
        await call
    inner = caught.value.unwrap()
    assert isinstance(inner, oss.exceptions.ServiceError)
    return inner


@pytest.mark.asyncio
async def test_a_bucket_the_objects_file_does_not_name_is_no_such_bucket(sim: Simulator) -> None:
    """Real OSS answers 404 NoSuchBucket for a bucket that does not exist, to a listing, a head and
    a ranged get alike (a HEAD answer has no body: the error is in its x-oss-err header), with
    Code, Message, RequestId, HostId and BucketName. The simulator answered a head or a get as if
    the bucket existed and only the key did not (NoSuchKey)."""
    async with sdk(sim.url) as client:
        errors = [
            await _service_error(client.list_objects_v2(oss.ListObjectsV2Request(bucket="no-such-bkt"))),
            await _service_error(client.head_object(oss.HeadObjectRequest(bucket="no-such-bkt",
                                                                          key="a/x y+z%.qcow2"))),
            await _service_error(client.get_object(oss.GetObjectRequest(
                bucket="no-such-bkt", key="a/x y+z%.qcow2", range_header="bytes=0-3"))),
        ]
    for error in errors:
        assert (error.status_code, error.code) == (404, "NoSuchBucket")
        fields = error.error_fileds
        assert fields["Message"] == "The specified bucket does not exist."
        assert fields["BucketName"] == "no-such-bkt"
        assert fields["HostId"]
        assert fields["RequestId"] == error.request_id != ""


@pytest.mark.asyncio
async def test_open_buckets_hold_every_key_of_a_bucket_the_objects_file_does_not_name(tmp_path: Path) -> None:
    """``run --simulate`` (oss_open_buckets): a bucket outside the objects file holds every key, so
    a list of one's own buckets can be rehearsed; a bucket the file names keeps exactly its keys."""
    objects = write_objects(tmp_path / "objects.jsonl", [object_line("bkt-one", "a/here.qcow2", 10, QCOW2)])
    config = SimulatorConfig(oss_objects=objects, oss_open_buckets=True)
    async with serve_simulator(config) as server, sdk(server.url) as client:
        head = await client.head_object(oss.HeadObjectRequest(bucket="my-own-bkt", key="any/key.qcow2"))
        assert head.content_length == 1 << 30
        missing = await _service_error(client.head_object(oss.HeadObjectRequest(bucket="bkt-one",
                                                                                key="a/gone.qcow2")))
        assert (missing.status_code, missing.code) == (404, "NoSuchKey")


@pytest.mark.asyncio
async def test_our_client_tells_a_missing_bucket_from_a_missing_key(sim: Simulator) -> None:
    """A missing key is None (the check's Source.NotFound); a missing bucket is an OssError that
    says so, with OSS's RequestId, not a missing key."""
    creds = StaticCredentials(Credentials(DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET))
    async with OssClient(creds, oss_endpoint("cn-beijing", sim.url), "cn-beijing", attempts=1) as client:
        assert await client.head("bkt-one", "a/missing.qcow2") is None
        with pytest.raises(OssError) as gone:
            await client.head("no-such-bkt", "a/x y+z%.qcow2")
    assert (gone.value.status, gone.value.code) == (404, "NoSuchBucket")
    assert gone.value.missing_bucket
    assert gone.value.request_id
    assert "no-such-bkt" in str(gone.value)


def test_oss_endpoint_rules() -> None:
    assert oss_endpoint("cn-beijing", None).url == "https://oss-cn-beijing.aliyuncs.com"
    local = oss_endpoint("cn-beijing", "http://127.0.0.1:9000")
    assert (local.insecure, local.path_style) == (True, True)
    with pytest.raises(Exception, match="loopback"):
        oss_endpoint("cn-beijing", "http://oss.example.com")
    assert oss_endpoint("cn-beijing", "http://oss.example.com", allow_insecure=True).insecure
    assert not oss_endpoint("cn-beijing", "https://oss-cn-beijing-internal.aliyuncs.com").path_style
