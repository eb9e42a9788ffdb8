"""The ENS API client: V3-signed RPC calls over an injected Exchange, errors translated once."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline import __version__
from pipeline.ens import signing
from pipeline.ens.classify import stale_credentials
from pipeline.ens.credentials import Credentials, CredentialSource, StaticCredentials
from pipeline.ens.endpoint import Endpoint
from pipeline.ens.listing import Paging, pages
from pipeline.ens.transport import Answer, Exchange, OnSend
from pipeline.errors import ApiError, BadResponse, CredentialsExpired, Delivery

USER_AGENT = f"ens-migrate/{__version__}"
PAGE_SIZE = 50
"""DescribeImages/DescribeSelfImages' largest page: what a listing asks for (a server may serve less)."""
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

    A single call never retries: each failure is raised once as an ``EnsError`` whose ``delivery``
    says whether the request may have been processed; ``pipeline.ens.classify`` decides what
    happens next. A listing (several read-only pages) is paced and resumed by ``paging``.
    """

    __slots__ = ("_base", "_clock", "_credentials", "_host", "_nonce", "_user_agent", "_wire", "paging")

    def __init__(
        self,
        exchange: Exchange,
        endpoint: Endpoint,
        credentials: Credentials | CredentialSource,
        *,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = signing.new_nonce,
        user_agent: str = USER_AGENT,
        paging: Paging | None = None,
    ) -> None:
        self._wire = exchange
        self.paging = paging or Paging()
        """Pacing and retries of every page of ``find_images_by_name``, ``find_image`` and
        ``iter_all_images`` (the run's lookup rate)."""
        self._base = endpoint.url + "/"
        self._host = endpoint.netloc
        self._credentials: CredentialSource = (
            StaticCredentials(credentials) if isinstance(credentials, Credentials) else credentials)
        self._clock = clock
        self._nonce = nonce
        self._user_agent = user_agent

    async def import_image(self, params: Mapping[str, str], *,
                           on_send: OnSend | None = None) -> ImportResult:
        """Call ImportImage with wire-ready parameters (``Job.query()``); ``on_send`` is awaited
        when its connection is ready, before each write (``Exchange.post``)."""
        status, headers, body = await self._exchange("ImportImage", params, on_send)
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
        return [image async for image in self._pages(name, None) if image.image_name == name]

    async def find_image(self, image_id: str) -> Image | None:
        """The self image with exactly this ImageId, or None (the API's id filter is fuzzy)."""
        async for image in self._pages(None, image_id):
            if image.image_id == image_id:
                return image
        return None

    def iter_all_images(self) -> AsyncIterator[Image]:
        """Every self image of the account, page by page (each page paced)."""
        return self._pages(None, None)

    async def _pages(self, name: str | None, image_id: str | None) -> AsyncIterator[Image]:
        async def fetch(number: int, size: int) -> ImagePage:
            return await self.describe_self_images(image_name=name, image_id=image_id,
                                                   page_number=number, page_size=size)

        seen: set[str] = set()
        async for page in pages(fetch, self.paging, page_size=PAGE_SIZE):
            for image in page.images:
                # A listing that shifts while it is paged (a new image) repeats an image.
                if image.image_id not in seen:
                    seen.add(image.image_id)
                    yield image

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

    async def call(self, action: str, params: Mapping[str, str]) -> tuple[Answer, dict[str, Any]]:
        """Send one signed RPC call; return the answer and its JSON body, or raise an EnsError."""
        answer = await self._post(action, params)
        return answer, parse_answer(answer.status, answer.headers, answer.body)

    async def _exchange(self, action: str, params: Mapping[str, str],
                        on_send: OnSend | None = None) -> tuple[int, Mapping[str, str], bytes]:
        """Sign and send one call; return (status, headers, body), or raise a TransportError."""
        answer = await self._post(action, params, on_send)
        return answer.status, answer.headers, answer.body

    async def _post(self, action: str, params: Mapping[str, str],
                    on_send: OnSend | None = None) -> Answer:
        """Sign with the current credentials and send. An answer that calls them stale (an expired
        STS token) was refused at the gateway: renew them and send once more
        (``CredentialsExpired`` when none can be had)."""
        source = self._credentials
        creds = await source.get()
        context = f"{action} to {self._host}"
        answer = await self._wire.post(*self._signed(action, params, creds), context=context,
                                       on_send=on_send)
        if 400 <= answer.status < 500 and creds.security_token and b"InvalidSecurityToken" in answer.body:
            code = stale_credentials(answer.body, renewable=not isinstance(source, StaticCredentials))
            if code is not None:
                fresh = await source.renew(creds, code)
                answer = await self._wire.post(*self._signed(action, params, fresh), context=context,
                                               on_send=on_send)
                if 400 <= answer.status < 500 and stale_credentials(answer.body, renewable=False):
                    # Refused again at the gateway: never a job failure, but no use going on.
                    raise CredentialsExpired(
                        f"ENS calls even freshly renewed credentials from {source.description} expired "
                        f"({action})", fix="check the local clock (NTP) and the source")
        return answer

    def _signed(self, action: str, params: Mapping[str, str],
                creds: Credentials) -> tuple[str, dict[str, str]]:
        """The URL (canonical query, sent verbatim) and headers of one freshly signed call."""
        signed = signing.sign_request(
            method="POST", host=self._host, action=action, params=params.items(),
            access_key_id=creds.access_key_id, access_key_secret=creds.access_key_secret,
            security_token=creds.security_token,
            date=signing.format_timestamp(self._clock()), nonce=self._nonce(),
        )
        headers = signed.headers
        headers["accept"] = "application/json"
        headers["user-agent"] = self._user_agent
        return (f"{self._base}?{signed.query}" if signed.query else self._base), headers


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
