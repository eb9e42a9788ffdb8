"""OSS calls through the official SDK V2 async client: list, head, ranged get; errors made ours.

Why the SDK: it signs V4 the way OSS checks it (the simulator's verifier is tested against it),
retries idempotent calls, and its asyncio client runs on aiohttp, which the project already ships.
Credentials come from the ENS chain (``CredentialSource``): fetched (renewed when due) before each
call and handed to the SDK's provider, so OSS calls and ENS calls sign with the same keys.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import alibabacloud_oss_v2 as oss
import alibabacloud_oss_v2.aio as oss_aio

from pipeline.ens.credentials import Credentials, CredentialSource
from pipeline.ens.endpoint import is_loopback
from pipeline.errors import ConfigError, EnsMigrateError

MAX_KEYS = 1000


class OssError(EnsMigrateError):
    """An OSS call failed: ``status`` 0 when no answer came (unreachable)."""

    def __init__(self, message: str, *, status: int = 0, code: str = "", request_id: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.request_id = request_id

    @property
    def unreachable(self) -> bool:
        """No HTTP answer, or a server-side 5xx: OSS could not be asked."""
        return self.status == 0 or self.status >= 500

    @property
    def missing_bucket(self) -> bool:
        """OSS says the bucket does not exist (404 NoSuchBucket), not only the key."""
        return self.status == 404 and self.code == "NoSuchBucket"


def request_id_note(request_id: str) -> str:
    """``, RequestId X`` for a message that names OSS's answer; nothing when it carried none."""
    return f", RequestId {request_id}" if request_id else ""


@dataclass(frozen=True, slots=True)
class OssEndpoint:
    """Where OSS calls go: a URL, whether plain http, and whether path style (an IP endpoint)."""

    url: str
    insecure: bool
    path_style: bool


def oss_endpoint(region: str, override: str | None, *, allow_insecure: bool = False) -> OssEndpoint:
    """``oss-<region>.aliyuncs.com`` over HTTPS, or ``--oss-endpoint`` (http only for loopback or
    with ``--insecure-http``; path style for an IP address or localhost)."""
    if not override:
        return OssEndpoint(f"https://oss-{region}.aliyuncs.com", False, False)
    text = override.strip()
    parts = urlsplit(text if "://" in text else f"https://{text}")
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise ConfigError(f"--oss-endpoint {override!r} is not an http(s) URL; e.g. "
                          "https://oss-cn-beijing-internal.aliyuncs.com or http://127.0.0.1:9000")
    if parts.scheme == "http" and not (allow_insecure or is_loopback(host)):
        raise ConfigError(f"--oss-endpoint {override!r}: plain http:// is only accepted for loopback "
                          "hosts; use https://, or pass --insecure-http to allow it")
    try:
        ipaddress.ip_address(host)
        is_ip = True
    except ValueError:
        is_ip = host.lower() == "localhost"
    return OssEndpoint(f"{parts.scheme}://{parts.netloc}", parts.scheme == "http", is_ip)


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One listed or headed object."""

    key: str
    size: int


class OssClient:
    """The few OSS calls the tool makes, on one SDK async client per region."""

    def __init__(self, credentials: CredentialSource, endpoint: OssEndpoint, region: str, *,
                 attempts: int = 3, timeout: float = 10.0) -> None:
        self._source = credentials
        self._current: Credentials | None = None
        self.region = region
        config = oss.config.load_default()
        config.credentials_provider = oss.credentials.CredentialsProviderFunc(self._provide)
        config.region = region
        config.endpoint = endpoint.url
        config.use_path_style = endpoint.path_style
        config.disable_ssl = endpoint.insecure
        config.retry_max_attempts = attempts
        config.connect_timeout = timeout
        config.readwrite_timeout = timeout
        self._client = oss_aio.AsyncClient(config)

    def _provide(self) -> Any:
        creds = self._current
        assert creds is not None, "credentials are fetched before every call"
        return oss.credentials.Credentials(creds.access_key_id, creds.access_key_secret,
                                           creds.security_token)

    async def __aenter__(self) -> OssClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.close()

    async def _ready(self) -> None:
        self._current = await self._source.get()

    async def list_page(self, bucket: str, prefix: str, token: str | None,
                        max_keys: int = MAX_KEYS) -> tuple[list[ObjectInfo], str | None]:
        """One ListObjectsV2 page: its objects and the continuation token (None at the end)."""
        await self._ready()
        request = oss.ListObjectsV2Request(bucket=bucket, prefix=prefix, max_keys=max_keys,
                                           continuation_token=token, encoding_type="url")
        try:
            result = await self._client.list_objects_v2(request)
        except oss.exceptions.BaseError as exc:
            raise _translate(exc, "ListObjectsV2", bucket, prefix) from None
        objects = [ObjectInfo(str(o.key), int(o.size or 0)) for o in result.contents or ()]
        return objects, (result.next_continuation_token if result.is_truncated else None)

    async def head(self, bucket: str, key: str) -> ObjectInfo | None:
        """HeadObject: the object's size, or None when the key does not exist (404); a bucket that
        does not exist raises (``OssError.missing_bucket``)."""
        await self._ready()
        try:
            result = await self._client.head_object(oss.HeadObjectRequest(bucket=bucket, key=key))
        except oss.exceptions.BaseError as exc:
            error = _translate(exc, "HeadObject", bucket, key)
            if error.status == 404 and not error.missing_bucket:
                return None
            raise error from None
        return ObjectInfo(key, int(result.content_length or 0))

    async def first_bytes(self, bucket: str, key: str, count: int = 4) -> bytes:
        """A ranged GetObject of the first ``count`` bytes."""
        await self._ready()
        request = oss.GetObjectRequest(bucket=bucket, key=key, range_header=f"bytes=0-{count - 1}",
                                       range_behavior="standard")
        try:
            result = await self._client.get_object(request)
            data: bytes = await result.body.read()
        except oss.exceptions.BaseError as exc:
            raise _translate(exc, "GetObject", bucket, key) from None
        return data[:count]

    async def iter_objects(self, bucket: str, prefix: str) -> AsyncIterator[ObjectInfo]:
        """Every object under ``prefix``, page by page (never the whole listing in memory)."""
        token: str | None = None
        while True:
            objects, token = await self.list_page(bucket, prefix, token)
            for item in objects:
                yield item
            if token is None:
                return


def _translate(exc: BaseException, operation: str, bucket: str, key: str) -> OssError:
    inner: BaseException = exc
    while isinstance(inner, oss.exceptions.OperationError):
        inner = inner.unwrap()
    where = f"oss://{bucket}/{key}"
    if isinstance(inner, oss.exceptions.ServiceError):
        code = str(inner.code or "")
        message = str(inner.message or "")
        if inner.status_code == 404 and code in ("", "BadErrorResponse"):
            code = "NoSuchKey"
        request_id = str(inner.request_id or "")
        asked = f" (RequestId {request_id})" if request_id else ""
        return OssError(f"OSS {operation} {where}: HTTP {inner.status_code} {code}: {message}{asked}",
                        status=int(inner.status_code or 0), code=code, request_id=request_id)
    return OssError(f"OSS {operation} {where}: no answer ({type(inner).__name__}: {inner}); check the "
                    "OSS endpoint (--oss-endpoint) and the network")
