"""The ENS API client: V3-signed RPC calls over an injected httpx.AsyncClient, errors translated once."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import httpx
import yarl
from httpx_aiohttp import AiohttpTransport
from httpx_aiohttp.transport import AiohttpResponseStream, map_aiohttp_exceptions

from pipeline import __version__
from pipeline.ens import signing
from pipeline.ens.credentials import Credentials
from pipeline.ens.endpoint import Endpoint
from pipeline.errors import ApiError, BadResponse, Delivery, TransportError

USER_AGENT = f"ens-migrate/{__version__} python-httpx/{httpx.__version__}"
PAGE_SIZE = 50
"""DescribeImages/DescribeSelfImages' largest page."""
BODY_START = 200
"""How much of an unparseable body an error keeps."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    """ImportImage's answer: the new image and the request, for a support ticket."""

    image_id: str
    request_id: str


@dataclass(frozen=True, slots=True)
class Image:
    """One image as the Describe calls list it."""

    image_id: str
    image_name: str
    status: str | None
    """``Available``, ``Creating``...; DescribeImages does not report it (None)."""
    creation_time: str | None


@dataclass(frozen=True, slots=True)
class ImagePage:
    """One page of DescribeImages/DescribeSelfImages."""

    images: tuple[Image, ...]
    total_count: int
    page_number: int
    page_size: int
    request_id: str


class EnsClient:
    """Calls ENS image APIs; every attempt is signed afresh (new date and nonce).

    Never retries: each failure is raised once as an ``EnsError`` whose ``delivery`` says whether
    the request may have been processed; ``pipeline.ens.classify`` decides what happens next.
    """

    __slots__ = ("_base", "_clock", "_credentials", "_direct", "_extensions", "_host", "_http",
                 "_nonce", "_user_agent")

    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoint: Endpoint,
        credentials: Credentials,
        *,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = signing.new_nonce,
        user_agent: str = USER_AGENT,
    ) -> None:
        self._http = http
        self._base = endpoint.url + "/"
        self._host = endpoint.netloc
        self._credentials = credentials
        self._clock = clock
        self._nonce = nonce
        self._user_agent = user_agent
        self._extensions = {"timeout": http.timeout.as_dict()}
        self._direct = http.direct if isinstance(http, AiohttpClient) else None

    async def import_image(self, params: Mapping[str, str]) -> ImportResult:
        """Call ImportImage with wire-ready parameters (``Job.query()``)."""
        status, headers, body = await self._exchange("ImportImage", params)
        data = parse_answer(status, headers, body)
        image_id, request_id = data.get("ImageId"), data.get("RequestId")
        if not isinstance(image_id, str) or not image_id:
            # The call succeeded in some way we cannot read: the image may exist.
            raise BadResponse(status=status, body_start=_start(body), delivery=Delivery.MAYBE_SENT)
        return ImportResult(image_id, request_id if isinstance(request_id, str) else "")

    async def describe_images(
        self, *, image_name: str | None = None, image_id: str | None = None,
        page_number: int = 1, page_size: int = PAGE_SIZE,
    ) -> ImagePage:
        """One page of DescribeImages (public and custom images; no status)."""
        return await self._page("DescribeImages", image_name, image_id, page_number, page_size)

    async def describe_self_images(
        self, image_name: str | None = None, image_id: str | None = None,
        page_number: int = 1, page_size: int = PAGE_SIZE,
    ) -> ImagePage:
        """One page of DescribeSelfImages (this account's images, with status; filters are fuzzy)."""
        return await self._page("DescribeSelfImages", image_name, image_id, page_number, page_size)

    async def delete_image(self, image_id: str) -> str:
        """Call DeleteImage; return its RequestId."""
        _, data = await self.call("DeleteImage", {"ImageId": image_id})
        request_id = data.get("RequestId")
        return request_id if isinstance(request_id, str) else ""

    async def find_images_by_name(self, name: str) -> list[Image]:
        """Every self image named exactly ``name`` (the API's name filter is fuzzy)."""
        return [image async for image in self._pages(name) if image.image_name == name]

    def iter_all_images(self) -> AsyncIterator[Image]:
        """Every self image of the account, page by page."""
        return self._pages(None)

    async def _pages(self, name: str | None) -> AsyncIterator[Image]:
        number = 1
        while True:
            page = await self.describe_self_images(image_name=name, page_number=number)
            for image in page.images:
                yield image
            if not page.images or number * PAGE_SIZE >= page.total_count:
                return
            number += 1

    async def _page(
        self, action: str, name: str | None, image_id: str | None, number: int, size: int
    ) -> ImagePage:
        params = {"PageNumber": str(number), "PageSize": str(size)}
        if name is not None:
            params["ImageName"] = name
        if image_id is not None:
            params["ImageId"] = image_id
        status, headers, body = await self._exchange(action, params)
        data = parse_answer(status, headers, body)
        try:
            return _image_page(data)
        except (TypeError, ValueError, KeyError) as exc:
            raise BadResponse(status=status, body_start=_start(body),
                              delivery=Delivery.MAYBE_SENT) from exc

    async def call(self, action: str, params: Mapping[str, str]) -> tuple[httpx.Response, dict[str, Any]]:
        """Send one signed RPC call; return the answer and its JSON body, or raise an EnsError."""
        status, headers, body = await self._exchange(action, params)
        response = httpx.Response(status, headers=list(headers.items()), content=body)
        return response, parse_answer(status, headers, body)

    async def _exchange(self, action: str, params: Mapping[str, str]) -> tuple[int, Mapping[str, str], bytes]:
        """Sign and send one call; return (status, headers, body), or raise a TransportError."""
        creds = self._credentials
        signed = signing.sign_request(
            method="POST", host=self._host, action=action, params=params.items(),
            access_key_id=creds.access_key_id, access_key_secret=creds.access_key_secret,
            security_token=creds.security_token,
            date=signing.format_timestamp(self._clock()), nonce=self._nonce(),
        )
        headers = signed.headers
        headers["accept"] = "application/json"
        headers["user-agent"] = self._user_agent
        # httpx keeps an already-encoded query as is; the aiohttp transport below does too.
        url = f"{self._base}?{signed.query}" if signed.query else self._base
        try:
            if self._direct is not None:
                return await self._direct.exchange(url, headers)
            # Built directly, not with build_request: the client's default headers, params and
            # cookies are not wanted, and merging them costs CPU on every call; its timeout is kept.
            request = httpx.Request("POST", url, headers=headers, extensions=self._extensions)
            response = await self._http.send(request)
        except (httpx.HTTPError, aiohttp.ClientError, OSError) as exc:
            raise transport_error(exc, f"{action} to {self._host}") from exc
        return response.status_code, response.headers, response.content


def parse_answer(status: int, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The JSON body of a 2xx answer; raise ``ApiError`` for an ENS error body, ``BadResponse``
    for anything unreadable (MAYBE_SENT unless the status is 4xx)."""
    delivery = Delivery.ANSWERED if 400 <= status < 500 else Delivery.MAYBE_SENT
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise BadResponse(status=status, body_start=_start(body), delivery=delivery) from exc
    if not isinstance(data, dict):
        raise BadResponse(status=status, body_start=_start(body), delivery=delivery)
    if 200 <= status < 300:
        return data
    code = data.get("Code") or data.get("code")
    if status < 400 or not isinstance(code, str):
        raise BadResponse(status=status, body_start=_start(body), delivery=delivery)
    raise _api_error(status, headers, data, code)


def _api_error(status: int, headers: Mapping[str, str], data: dict[str, Any], code: str) -> ApiError:
    message = data.get("Message") or data.get("message") or ""
    return ApiError(
        code=code, message=str(message), status=status,
        request_id=_opt(data.get("RequestId") or data.get("requestId")),
        host_id=_opt(data.get("HostId")), recommend=_opt(data.get("Recommend")),
        retry_after=_retry_after(headers.get("x-acs-retry-after")),
    )


def transport_error(exc: BaseException, context: str) -> TransportError:
    """Translate an httpx (or aiohttp, through its transport) failure; state if it may have arrived.

    httpx_aiohttp maps aiohttp errors loosely (a server disconnect after the request was sent
    becomes ``httpx.ConnectTimeout``), so the aiohttp cause, when there is one, decides.
    """
    cause = exc.__cause__
    if isinstance(exc, httpx.HTTPError) and isinstance(cause, aiohttp.ClientError | OSError):
        exc = cause
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError):
        what, delivery = "could not connect", Delivery.NOT_SENT
    elif isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        what, delivery = "invalid URL", Delivery.NOT_SENT
    elif isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.ProxyError
                    | httpx.UnsupportedProtocol):
        what, delivery = "could not connect", Delivery.NOT_SENT
    elif isinstance(exc, httpx.LocalProtocolError):
        what, delivery = "request refused by the HTTP library before sending", Delivery.NOT_SENT
    elif isinstance(exc, httpx.PoolTimeout):
        what, delivery = "no free connection in the pool", Delivery.NOT_SENT
    elif isinstance(exc, httpx.TimeoutException | TimeoutError):
        what, delivery = "timed out after the request was sent", Delivery.MAYBE_SENT
    else:
        what, delivery = "connection lost after the request was sent", Delivery.MAYBE_SENT
    detail = str(exc) or "no detail"
    advice = ("safe to resend" if delivery is Delivery.NOT_SENT
              else "it may have been processed: reconcile before resending")
    return TransportError(f"{context}: {what} ({type(exc).__name__}: {detail}); {advice}",
                          delivery=delivery)


def _image_page(data: Mapping[str, Any]) -> ImagePage:
    node = data.get("Images") or {}
    items = (node.get("Image") or []) if isinstance(node, dict) else node
    images = tuple(
        Image(
            image_id=str(item["ImageId"]), image_name=str(item.get("ImageName") or ""),
            status=_opt(item.get("Status")), creation_time=_opt(item.get("CreationTime")),
        )
        for item in items
    )
    return ImagePage(
        images=images, total_count=int(data.get("TotalCount") or 0),
        page_number=int(data.get("PageNumber") or 0), page_size=int(data.get("PageSize") or 0),
        request_id=str(data.get("RequestId") or ""),
    )


def _retry_after(value: str | None) -> float | None:
    """``x-acs-retry-after`` is milliseconds on the wire; seconds here."""
    try:
        millis = int(value) if value else 0
    except ValueError:
        return None
    return millis / 1000 if millis > 0 else None


def _opt(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _start(body: bytes) -> str:
    return body[:BODY_START].decode("utf-8", errors="replace")


class VerbatimAiohttpTransport(AiohttpTransport):
    """httpx_aiohttp's transport, handing aiohttp the URL as already encoded.

    aiohttp re-quotes a URL given as text (``%2A`` → ``*``, ``%2F`` → ``/``); the values still
    decode the same, but we send exactly the canonical query we signed.
    """

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        timeout = request.extensions.get("timeout", {})
        with map_aiohttp_exceptions():
            response = await self.client.request(
                method=request.method,
                url=yarl.URL(str(request.url), encoded=True),
                headers=request.headers,
                data=request.content or None,
                # httpx's headers are the whole truth: no unsigned Content-Type for an empty body.
                skip_auto_headers=("Content-Type",),
                allow_redirects=False,
                auto_decompress=False,
                compress=False,
                timeout=aiohttp.ClientTimeout(
                    sock_connect=timeout.get("connect"), sock_read=timeout.get("read"),
                    connect=timeout.get("pool"),
                ),
                server_hostname=request.extensions.get("sni_hostname"),
            ).__aenter__()
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(status_code=response.status, headers=response.raw_headers,
                              stream=AiohttpResponseStream(response), request=request,
                              extensions=extensions)


class AiohttpClient(httpx.AsyncClient):
    """The httpx client over ``VerbatimAiohttpTransport``; ``EnsClient`` posts through ``direct``.

    Going through ``httpx.AsyncClient.send`` builds and validates an httpx URL, Request, Headers,
    Response and cookie jar per call on top of aiohttp's own: about a third of the client-side CPU
    of an ImportImage (tests/bench/bench_overhead.py). The transport, pool, TLS and timeouts are
    the same either way; anything else (tests, the httpx transport) keeps the plain httpx path.
    """

    def __init__(self, *, transport: VerbatimAiohttpTransport, timeout: httpx.Timeout,
                 base_url: str) -> None:
        super().__init__(transport=transport, timeout=timeout, base_url=base_url, follow_redirects=False)
        self.direct = DirectPost(transport, timeout)


class DirectPost:
    """A bodiless signed POST straight through the transport's aiohttp session."""

    __slots__ = ("_timeout", "_transport")

    def __init__(self, transport: VerbatimAiohttpTransport, timeout: httpx.Timeout) -> None:
        self._transport = transport
        self._timeout = aiohttp.ClientTimeout(sock_connect=timeout.connect, sock_read=timeout.read,
                                              connect=timeout.pool)

    async def exchange(self, url: str, headers: Mapping[str, str]) -> tuple[int, Mapping[str, str], bytes]:
        """POST ``url`` (already encoded, sent verbatim) with exactly ``headers``; read the answer."""
        transport = self._transport
        if not isinstance(transport.client, aiohttp.ClientSession):
            transport.client = transport.get_client()
        async with transport.client.request(
            "POST", yarl.URL(url, encoded=True), headers=headers,
            skip_auto_headers=("Content-Type",), allow_redirects=False, auto_decompress=False,
            compress=False, timeout=self._timeout,
        ) as response:
            body = await response.read()
        return response.status, response.headers, body


def make_http_client(
    endpoint: Endpoint, *, concurrency: int, connect_timeout: float, read_timeout: float,
    transport: Literal["aiohttp", "httpx"] = "aiohttp",
) -> httpx.AsyncClient:
    """An httpx client for ``endpoint``: a keep-alive pool of ``concurrency`` connections, TLS
    verified, no redirects, no proxies from the environment, no retries below us."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout,
                            pool=connect_timeout)
    if transport == "aiohttp":
        return AiohttpClient(transport=VerbatimAiohttpTransport(verify=True, limits=limits),
                             timeout=timeout, base_url=endpoint.url)
    if transport == "httpx":
        return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(verify=True, limits=limits, retries=0),
                                 timeout=timeout, base_url=endpoint.url, follow_redirects=False)
    raise ValueError(f"transport must be 'aiohttp' or 'httpx', got {transport!r}")
