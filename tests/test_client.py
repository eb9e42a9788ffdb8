"""The ENS client: requests the official SDK would send, answers and failures in our error tree."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import re
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp
import httpx
import pytest
from aiohttp.client_reqrep import ConnectionKey
from alibabacloud_ens20171110 import models as sdk_models
from alibabacloud_ens20171110.client import Client as SdkClient
from alibabacloud_tea_openapi.utils_models import Config as SdkConfig

from pipeline.ens import signing
from pipeline.ens.classify import Disposition, classify
from pipeline.ens.client import EnsClient, ImportResult
from pipeline.ens.credentials import Credentials
from pipeline.ens.endpoint import Endpoint, parse_endpoint
from pipeline.ens.transport import TRANSPORTS, HttpxExchange, open_exchange, transport_error
from pipeline.errors import ApiError, BadResponse, Delivery, TransportError
from pipeline.joblist.job import encode_disk_mapping
from tests.test_classify import API_CODES

SECRET = "test-secret-value-0123"
CREDS = Credentials("LTAI5tTestKey0001", SECRET)
STS = Credentials("LTAI5tTestKey0001", SECRET, "sts-token-value")
ENDPOINT = Endpoint("https", "ens.aliyuncs.com")
PARAMS = {
    "Architecture": "x86_64", "ComputeType": "ens_vm", "ImageFormat": "qcow2",
    "ImageName": "镜像 a*b~c:d", "LicenseType": "BYOL", "OSSBucket": "bkt",
    "OSSObject": "dir/a b+c%20&d=e'(x)!.qcow2", "OSSRegion": "cn-beijing", "OSType": "linux",
    "OSVersion": "7.6", "Platform": "centos", "TargetOSSRegionId": "cn-beijing",
    "DiskDeviceMapping": encode_disk_mapping(
        [{"OSSBucket": "b2", "OSSObject": "o 2/中*", "OSSRegion": "cn-beijing"}]
    ),
}


def verify(method: str, raw_path: str, headers: Mapping[str, str], body: bytes, secret: str) -> bool:
    """ens-api.md §3.6: the server-side recipe (decode the query, re-encode, recompute)."""
    algo, _, rest = headers["authorization"].partition(" ")
    parts = dict(p.split("=", 1) for p in rest.split(","))
    signed = parts["SignedHeaders"].split(";")
    url = urlsplit(raw_path)
    enc = lambda s: quote(s, safe="~")  # noqa: E731
    cq = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(parse_qsl(url.query, keep_blank_values=True)))
    ch = "".join(f"{h}:{headers[h].strip()}\n" for h in signed)
    payload = hashlib.sha256(body).hexdigest()
    assert payload == headers["x-acs-content-sha256"]
    creq = "\n".join([method, url.path or "/", cq, ch, ";".join(signed), payload])
    sts = algo + "\n" + hashlib.sha256(creq.encode()).hexdigest()
    good = hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(good, parts["Signature"])


def ens_client(handler: Callable[[httpx.Request], httpx.Response], creds: Credentials = CREDS,
               **kwargs: Any) -> EnsClient:
    exchange = HttpxExchange(httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    return EnsClient(exchange, ENDPOINT, creds, **kwargs)


def answer(
    status: int, body: object, headers: Mapping[str, str] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return lambda request: httpx.Response(status, content=content, headers=headers)


# --- what goes on the wire -------------------------------------------------------------------

@pytest.mark.asyncio
async def test_request_shape() -> None:
    """POST / with every parameter in the canonical query, an empty body, action and version in
    x-acs-* headers, JSON accepted, our user agent, and a signature the server recipe accepts."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"RequestId": "R1", "ImageId": "m-1"})

    assert await ens_client(handler).import_image(PARAMS) == ImportResult("m-1", "R1")
    (request,) = seen
    raw_path = request.url.raw_path.decode("ascii")
    assert request.method == "POST"
    assert raw_path == "/?" + signing.canonical_query(PARAMS.items())
    assert request.content == b""
    assert request.headers["x-acs-action"] == "ImportImage"
    assert request.headers["x-acs-version"] == "2017-11-10"
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"].startswith("ens-migrate/")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", request.headers["x-acs-date"])
    assert dict(parse_qsl(urlsplit(raw_path).query))["DiskDeviceMapping"] == (
        '[{"OSSBucket":"b2","OSSObject":"o 2/中*","OSSRegion":"cn-beijing"}]')
    assert verify("POST", raw_path, request.headers, request.content, SECRET)


@pytest.mark.asyncio
async def test_every_request_is_signed_afresh() -> None:
    """Each call takes a new date from the clock and a new nonce, hence a new signature."""
    seen: list[httpx.Request] = []
    clock = iter([1_700_000_000.0, 1_700_000_001.0])
    nonces = iter(["a" * 32, "b" * 32])

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"RequestId": "R", "ImageId": "m-1"})

    client = ens_client(handler, clock=lambda: next(clock), nonce=lambda: next(nonces))
    await client.import_image({"ImageName": "n"})
    await client.import_image({"ImageName": "n"})
    first, second = seen
    assert [r.headers["x-acs-date"] for r in seen] == ["2023-11-14T22:13:20Z", "2023-11-14T22:13:21Z"]
    assert [r.headers["x-acs-signature-nonce"] for r in seen] == ["a" * 32, "b" * 32]
    assert first.headers["authorization"] != second.headers["authorization"]


@pytest.mark.asyncio
async def test_sts_credentials_send_the_token() -> None:
    """STS credentials add x-acs-security-token and x-acs-accesskey-id, both signed."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"RequestId": "R", "ImageId": "m-1"})

    await ens_client(handler, STS).import_image({"ImageName": "n"})
    headers = seen[0].headers
    assert headers["x-acs-security-token"] == "sts-token-value"
    assert headers["x-acs-accesskey-id"] == "LTAI5tTestKey0001"
    assert "x-acs-security-token;" in headers["authorization"]


@dataclass
class Captured:
    """Requests a loopback HTTP server received."""

    port: int
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def capture() -> Iterator[Captured]:
    """A real loopback HTTP server (in a thread) recording each request, answering a success."""
    state = Captured(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.requests.append((self.command, self.path, headers, body))
            out = json.dumps({"RequestId": "R1", "ImageId": "m-1", "Code": 0, "TotalCount": 0,
                              "PageNumber": 1, "PageSize": 50, "Images": {"Image": []}}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def sdk_import(port: int, creds: Credentials) -> None:
    """ImportImage with the official SDK, same parameters as PARAMS."""
    config = SdkConfig(endpoint=f"127.0.0.1:{port}", protocol="http", access_key_id=creds.access_key_id,
                       access_key_secret=creds.access_key_secret, security_token=creds.security_token)
    mapping = [sdk_models.ImportImageRequestDiskDeviceMapping(ossbucket="b2", ossobject="o 2/中*",
                                                               ossregion="cn-beijing")]
    p = PARAMS
    SdkClient(config).import_image(sdk_models.ImportImageRequest(
        architecture=p["Architecture"], compute_type=p["ComputeType"], disk_device_mapping=mapping,
        image_format=p["ImageFormat"], image_name=p["ImageName"], license_type=p["LicenseType"],
        ossbucket=p["OSSBucket"], ossobject=p["OSSObject"], ossregion=p["OSSRegion"], ostype=p["OSType"],
        osversion=p["OSVersion"], platform=p["Platform"], target_ossregion_id=p["TargetOSSRegionId"],
    ))


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("creds", [CREDS, STS], ids=["ak", "sts"])
async def test_same_request_as_the_official_sdk(
    capture: Captured, transport: Any, creds: Credentials
) -> None:
    """Over a real socket, our ImportImage carries the SDK's decoded query and the SDK's values for
    every header we sign; it passes the server recipe, with the canonical query sent verbatim."""
    await asyncio.to_thread(sdk_import, capture.port, creds)
    endpoint = parse_endpoint(f"http://127.0.0.1:{capture.port}")
    async with open_exchange(endpoint, concurrency=2, connect_timeout=5, read_timeout=5,
                                transport=transport) as http:
        await EnsClient(http, endpoint, creds).import_image(PARAMS)
    (_, sdk_path, sdk_headers, _), (method, path, headers, body) = capture.requests
    assert dict(parse_qsl(urlsplit(path).query)) == dict(parse_qsl(urlsplit(sdk_path).query)) == PARAMS
    assert path == "/?" + signing.canonical_query(PARAMS.items())
    auth = signing.parse_authorization(headers["authorization"])
    sdk_auth = signing.parse_authorization(sdk_headers["authorization"])
    assert auth is not None
    assert sdk_auth is not None
    volatile = {"x-acs-date", "x-acs-signature-nonce"}
    assert {h: headers[h] for h in auth.signed_headers if h not in volatile} == {
        h: sdk_headers[h] for h in auth.signed_headers if h not in volatile}
    sdk_acs = {h for h in sdk_auth.signed_headers if h.startswith("x-acs-")} - {"x-acs-credentials-provider"}
    assert {h for h in auth.signed_headers if h != "host"} == sdk_acs
    assert (method, body) == ("POST", b"")
    assert "content-type" not in headers
    assert verify(method, path, headers, body, SECRET)


# --- answers ---------------------------------------------------------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize(("code", "status", "expected"), API_CODES)
async def test_error_answers_classify(code: str, status: int, expected: Disposition) -> None:
    """Every published error code, as an ENS JSON error answer, reaches its disposition."""
    client = ens_client(answer(status, {"RequestId": "R", "Code": code, "Message": "m"}))
    with pytest.raises(ApiError) as info:
        await client.import_image({"ImageName": "n"})
    assert (info.value.code, info.value.status) == (code, status)
    assert classify(info.value) is expected


@pytest.mark.asyncio
async def test_error_answer_carries_its_data() -> None:
    """An ApiError keeps Code, Message, status, RequestId, HostId, Recommend and retry-after (s)."""
    body = {"RequestId": "REQ-1", "HostId": "ens.aliyuncs.com", "Code": "Throttling.User",
            "Message": "Request was denied due to user flow control.", "Recommend": "https://r/x"}
    client = ens_client(answer(400, body, {"x-acs-retry-after": "1500"}))
    with pytest.raises(ApiError) as info:
        await client.import_image({"ImageName": "n"})
    e = info.value
    assert (e.code, e.message, e.status, e.request_id, e.host_id, e.recommend, e.retry_after) == (
        "Throttling.User", body["Message"], 400, "REQ-1", "ens.aliyuncs.com", "https://r/x", 1.5)
    assert "REQ-1" in str(e)


@pytest.mark.asyncio
@pytest.mark.parametrize("header", ["soon", "0", "-5", ""])
async def test_unusable_retry_after_is_ignored(header: str) -> None:
    """A retry-after that is not a positive integer of milliseconds gives None."""
    client = ens_client(answer(400, {"Code": "Throttling", "Message": "m"}, {"x-acs-retry-after": header}))
    with pytest.raises(ApiError) as info:
        await client.import_image({"ImageName": "n"})
    assert info.value.retry_after is None


@pytest.mark.asyncio
@pytest.mark.parametrize(("status", "body", "delivery"), [
    (502, b"<html><body>502 Bad Gateway</body></html>", Delivery.MAYBE_SENT),
    (503, b"", Delivery.MAYBE_SENT),
    (500, b'{"unexpected": true}', Delivery.MAYBE_SENT),
    (200, b"<html>maintenance</html>", Delivery.MAYBE_SENT),
    (200, b'{"RequestId": "R"}', Delivery.MAYBE_SENT),
    (200, b"[]", Delivery.MAYBE_SENT),
    (403, b"<html>Forbidden by proxy</html>", Delivery.ANSWERED),
    (404, b"", Delivery.ANSWERED),
])
async def test_unreadable_answers(status: int, body: bytes, delivery: Delivery) -> None:
    """HTML, empty or shapeless answers are BadResponse: maybe-sent unless 4xx."""
    with pytest.raises(BadResponse) as info:
        await ens_client(answer(status, body)).import_image({"ImageName": "n"})
    assert (info.value.status, info.value.delivery) == (status, delivery)
    assert info.value.body_start == body.decode()[:200]


# --- failures on real loopback sockets -------------------------------------------------------

@contextlib.asynccontextmanager
async def loopback(behaviour: str) -> AsyncIterator[tuple[int, asyncio.Event]]:
    """A TCP server that reads one request, then either stays silent or closes the connection."""
    received, release = asyncio.Event(), asyncio.Event()
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await reader.readuntil(b"\r\n\r\n")
            received.set()
            if behaviour == "silent":
                await release.wait()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], received
    finally:
        release.set()
        server.close()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


async def call(port: int, transport: Any, *, concurrency: int = 2, read_timeout: float = 5) -> TransportError:
    endpoint = parse_endpoint(f"http://127.0.0.1:{port}")
    async with open_exchange(endpoint, concurrency=concurrency, connect_timeout=5,
                                read_timeout=read_timeout, transport=transport) as http:
        with pytest.raises(TransportError) as info:
            await EnsClient(http, endpoint, CREDS).import_image({"ImageName": "n"})
    return info.value


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_read_timeout_may_have_been_sent(transport: Any) -> None:
    """A server that took the request and never answers: read timeout, MAYBE_SENT, ambiguous."""
    async with loopback("silent") as (port, received):
        error = await call(port, transport, read_timeout=0.2)
        assert received.is_set()
    assert error.delivery is Delivery.MAYBE_SENT
    assert classify(error) is Disposition.AMBIGUOUS
    assert "timed out" in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_close_after_send_may_have_been_sent(transport: Any) -> None:
    """A server that read the request then closed the connection: MAYBE_SENT."""
    async with loopback("close") as (port, received):
        error = await call(port, transport)
        assert received.is_set()
    assert error.delivery is Delivery.MAYBE_SENT
    assert "reconcile" in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_connection_refused_was_not_sent(transport: Any) -> None:
    """Nobody listening: NOT_SENT, safe to retry; the message names the host, never the secret."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await call(port, transport)
    assert error.delivery is Delivery.NOT_SENT
    assert classify(error) is Disposition.RETRY
    assert f"127.0.0.1:{port}" in str(error)
    assert SECRET not in str(error)


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_pool_exhausted_was_not_sent(transport: Any) -> None:
    """With every pooled connection busy past the pool timeout, the request never left."""
    async with loopback("silent") as (port, received):
        endpoint = parse_endpoint(f"http://127.0.0.1:{port}")
        async with open_exchange(endpoint, concurrency=1, connect_timeout=0.2, read_timeout=30,
                                    transport=transport) as http:
            client = EnsClient(http, endpoint, CREDS)
            busy = asyncio.create_task(client.import_image({"ImageName": "first"}))
            await received.wait()
            with pytest.raises(TransportError) as info:
                await client.import_image({"ImageName": "second"})
            busy.cancel()
            await asyncio.gather(busy, return_exceptions=True)
    assert info.value.delivery is Delivery.NOT_SENT


@pytest.mark.parametrize(("error", "delivery"), [
    (aiohttp.ServerDisconnectedError(), Delivery.MAYBE_SENT),
    (aiohttp.ClientOSError(104, "Connection reset by peer"), Delivery.MAYBE_SENT),
    (aiohttp.ServerTimeoutError("read"), Delivery.MAYBE_SENT),
    (aiohttp.ConnectionTimeoutError("pool"), Delivery.NOT_SENT),
    (aiohttp.ClientConnectorDNSError(
        ConnectionKey("ens.invalid", 443, True, True, None, None, None), OSError(-2, "unknown name")),
     Delivery.NOT_SENT),
    (httpx.ReadTimeout("read"), Delivery.MAYBE_SENT),
    (httpx.RemoteProtocolError("closed"), Delivery.MAYBE_SENT),
    (httpx.ConnectError("refused"), Delivery.NOT_SENT),
    (httpx.PoolTimeout("pool"), Delivery.NOT_SENT),
])
def test_transport_errors_say_whether_the_request_may_have_arrived(error: Exception,
                                                                   delivery: Delivery) -> None:
    """Each library's failure is translated once: a connection that never carried the request is
    NOT_SENT; a disconnect or timeout after sending is MAYBE_SENT."""
    assert transport_error(error, "ImportImage to h").delivery is delivery


# --- image lookups ---------------------------------------------------------------------------

class FakeImages:
    """A fake DescribeSelfImages/DescribeImages/DeleteImage that verifies every signature."""

    def __init__(self, names: list[str]) -> None:
        self.images = [{"ImageId": f"m-{i}", "ImageName": n, "Status": "Available",
                        "CreationTime": "2024-01-01T00:00:00Z"} for i, n in enumerate(names)]
        self.calls: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert verify("POST", request.url.raw_path.decode(), request.headers, request.content, SECRET)
        query = dict(parse_qsl(request.url.query.decode()))
        self.calls.append({"Action": request.headers["x-acs-action"], **query})
        if request.headers["x-acs-action"] == "DeleteImage":
            return httpx.Response(200, json={"Code": 0, "RequestId": "DEL-1"})
        hits = [i for i in self.images if query.get("ImageName", "") in i["ImageName"]]
        number, size = int(query["PageNumber"]), int(query["PageSize"])
        page = hits[(number - 1) * size: number * size]
        return httpx.Response(200, json={"Code": 0, "RequestId": "R", "TotalCount": str(len(hits)),
                                         "PageNumber": str(number), "PageSize": str(size),
                                         "Images": {"Image": page}})


@pytest.mark.asyncio
async def test_find_images_by_name_returns_exact_matches_across_pages() -> None:
    """The fuzzy ImageName filter is paged through 50 at a time; only exact names come back."""
    fake = FakeImages([f"web-{i}" for i in range(120)] + ["web", "web"])
    found = await ens_client(fake).find_images_by_name("web")
    assert [i.image_id for i in found] == ["m-120", "m-121"]
    assert [(c["Action"], c["ImageName"], c["PageNumber"], c["PageSize"]) for c in fake.calls] == [
        ("DescribeSelfImages", "web", str(n), "50") for n in (1, 2, 3)]


@pytest.mark.asyncio
async def test_find_images_by_name_with_no_match() -> None:
    """An unknown name gives an empty list after one call."""
    fake = FakeImages(["a", "b"])
    assert await ens_client(fake).find_images_by_name("zzz") == []
    assert len(fake.calls) == 1


@pytest.mark.asyncio
async def test_iter_all_images_pages_through_everything() -> None:
    """Every self image, page after page, without a name filter."""
    fake = FakeImages([f"img{i}" for i in range(101)])
    images = [i async for i in ens_client(fake).iter_all_images()]
    assert [i.image_id for i in images] == [f"m-{i}" for i in range(101)]
    assert images[0].status == "Available"
    assert all("ImageName" not in c for c in fake.calls)


@pytest.mark.asyncio
async def test_describe_images_page() -> None:
    """DescribeImages gives a page with counts; it has no per-image status."""
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-acs-action"] == "DescribeImages"
        return httpx.Response(200, json={"Code": 0, "RequestId": "R", "TotalCount": 1, "PageNumber": 1,
                                         "PageSize": 50, "Images": {"Image": [
                                             {"ImageId": "m-1", "ImageName": "x", "CreationTime": "t"}]}})

    page = await ens_client(handler).describe_images(image_id="m-1")
    assert (page.total_count, page.page_number, page.page_size, page.request_id) == (1, 1, 50, "R")
    assert page.images[0].status is None
    assert page.images[0].creation_time == "t"


@pytest.mark.asyncio
async def test_delete_image_returns_request_id() -> None:
    """DeleteImage sends the ImageId and returns the RequestId."""
    fake = FakeImages([])
    assert await ens_client(fake).delete_image("m-9") == "DEL-1"
    assert fake.calls == [{"Action": "DeleteImage", "ImageId": "m-9"}]


@pytest.mark.asyncio
async def test_shapeless_describe_answer_is_bad_response() -> None:
    """A describe answer whose images cannot be read is a BadResponse, not a crash."""
    client = ens_client(answer(200, {"Images": {"Image": [{"ImageName": "no id"}]}, "TotalCount": "x"}))
    with pytest.raises(BadResponse):
        await client.describe_self_images(image_name="x")


# --- the HTTP client -------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_exchanges_verify_tls_and_size_the_pool() -> None:
    """Both transports verify certificates and keep a pool as large as the concurrency."""
    import ssl

    from pipeline.ens.transport import AiohttpExchange

    for transport in TRANSPORTS:
        async with open_exchange(ENDPOINT, concurrency=7, connect_timeout=1, read_timeout=2,
                                 transport=transport) as exchange:
            if isinstance(exchange, AiohttpExchange):
                connector = exchange._session.connector
                assert isinstance(connector, aiohttp.TCPConnector)
                assert connector.limit == 7
                assert isinstance(connector._ssl, ssl.SSLContext)
                assert connector._ssl.verify_mode is ssl.CERT_REQUIRED
                assert (exchange._timeout.sock_read, exchange._timeout.sock_connect) == (2, 1)
            else:
                assert isinstance(exchange, HttpxExchange)
                http = exchange._http
                pool = http._transport._pool  # type: ignore[attr-defined]
                assert pool._ssl_context.verify_mode is ssl.CERT_REQUIRED
                assert pool._max_connections == 7
                assert (http.timeout.read, http.timeout.connect) == (2, 1)


@pytest.mark.asyncio
async def test_exchange_refuses_zero_concurrency() -> None:
    """A pool of zero connections is a programming error."""
    with pytest.raises(ValueError, match="concurrency"):
        async with open_exchange(ENDPOINT, concurrency=0, connect_timeout=1, read_timeout=1):
            pass
