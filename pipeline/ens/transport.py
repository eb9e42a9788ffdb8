"""The I/O seam under the ENS client: one ``Exchange.post``, over httpx or straight over aiohttp.

``EnsClient`` signs; an ``Exchange`` only carries a signed, bodiless POST and its answer, and
translates its library's failures into ``TransportError`` saying whether the request may have
arrived. Tests give the client an ``HttpxExchange`` over ``httpx.MockTransport``: the client code
they exercise is the code production runs.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Protocol, get_args

import aiohttp
import anyio
import httpx
import yarl

from pipeline.ens.endpoint import Endpoint
from pipeline.errors import Delivery, TransportError
from pipeline.settings import Transport

TRANSPORTS: tuple[Transport, ...] = get_args(Transport)
"""``aiohttp`` (the default: a third less client CPU per call, tests/bench/bench_overhead.py) and
``httpx`` (its own connection pool)."""


OnSend = Callable[[], Awaitable[None]]
"""Awaited once the request's connection is ready (a new one connected and through TLS, or a
pooled one taken), just before the request is written: where the rate gate counts the send."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back: the status, the headers and the whole body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Exchange(Protocol):
    """Carries one signed request to ENS and its answer back."""

    async def post(self, url: str, headers: Mapping[str, str], *, context: str,
                   on_send: OnSend | None = None) -> Answer:
        """POST ``url`` (already encoded, sent verbatim) with exactly ``headers``; read the
        answer. Raise ``TransportError`` (``context`` names the call) when there is none.
        ``on_send`` is awaited when the connection is ready, before the request is written
        (not at all where the transport cannot tell: a mock)."""
        ...


class HttpxExchange:
    """Posts through an ``httpx.AsyncClient``: its pool, or any transport (MockTransport)."""

    __slots__ = ("_deadline", "_extensions", "_http")

    def __init__(self, http: httpx.AsyncClient, deadline: float | None = None) -> None:
        self._http = http
        self._extensions = {"timeout": http.timeout.as_dict()}
        self._deadline = deadline
        """Seconds for the whole exchange (None: only httpx's per-read timeouts)."""

    async def post(self, url: str, headers: Mapping[str, str], *, context: str,
                   on_send: OnSend | None = None) -> Answer:
        """POST through httpx (see ``Exchange.post``)."""
        # Built directly, not with build_request: the client's default headers, params and
        # cookies are not wanted, and merging them costs CPU on every call; its timeout is kept.
        extensions = self._extensions if on_send is None else {
            **self._extensions, "trace": _httpcore_trace(on_send)}
        request = httpx.Request("POST", url, headers=headers, extensions=extensions)
        try:
            with _deadline(self._deadline):
                response = await self._http.send(request)
        except (httpx.HTTPError, OSError) as exc:
            raise transport_error(exc, context) from exc
        return Answer(response.status_code, response.headers, response.content)


def _httpcore_trace(on_send: OnSend) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """httpcore's ``trace`` extension calling ``on_send`` as the request headers are written."""
    async def trace(event: str, info: dict[str, Any]) -> None:
        if event == "http11.send_request_headers.started":
            await on_send()
    return trace


class AiohttpExchange:
    """Posts straight through an aiohttp session: no httpx models built per call.

    ``on_send`` needs the session made with ``ready_trace()`` among its trace configs
    (``open_exchange`` does that); without it the hook is not called.
    """

    __slots__ = ("_deadline", "_session", "_timeout")

    def __init__(self, session: aiohttp.ClientSession, timeout: aiohttp.ClientTimeout,
                 deadline: float | None = None) -> None:
        self._session = session
        self._timeout = timeout
        self._deadline = deadline
        """Seconds for the whole exchange: an answer trickled a byte at a time is still cut."""

    async def post(self, url: str, headers: Mapping[str, str], *, context: str,
                   on_send: OnSend | None = None) -> Answer:
        """POST through aiohttp (see ``Exchange.post``)."""
        try:
            with _deadline(self._deadline):
                return await self._post(url, headers, on_send)
        except (aiohttp.ClientError, OSError) as exc:
            raise transport_error(exc, context) from exc

    async def _post(self, url: str, headers: Mapping[str, str], on_send: OnSend | None) -> Answer:
        async with self._session.request(
            "POST", yarl.URL(url, encoded=True), headers=headers,
            # The signed headers are the whole truth: no unsigned Content-Type for an empty body.
            skip_auto_headers=("Content-Type",), allow_redirects=False, auto_decompress=False,
            compress=False, timeout=self._timeout,
            trace_request_ctx=None if on_send is None else _Ready(on_send),
        ) as response:
            body = await response.read()
        return Answer(response.status, response.headers, body)


@dataclass(frozen=True, slots=True)
class _Ready:
    """What a request hands ``ready_trace``'s hooks: its ``on_send``."""

    on_send: OnSend


async def _connection_ready(session: aiohttp.ClientSession, context: SimpleNamespace,
                            params: object) -> None:
    ready = getattr(context, "trace_request_ctx", None)
    if isinstance(ready, _Ready):
        await ready.on_send()


def ready_trace() -> aiohttp.TraceConfig:
    """A trace config calling each request's ``on_send`` once its connection is ready: after a
    new connection's TCP connect and TLS handshake, or as a pooled connection is taken; both
    come before the request is written."""
    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(_connection_ready)
    trace.on_connection_reuseconn.append(_connection_ready)
    trace.freeze()
    return trace


def _deadline(seconds: float | None) -> contextlib.AbstractContextManager[object]:
    """``TimeoutError`` (an ``OSError``: the request may have arrived) once ``seconds`` pass."""
    return anyio.fail_after(seconds) if seconds is not None else contextlib.nullcontext()


@contextlib.asynccontextmanager
async def open_exchange(
    endpoint: Endpoint, *, concurrency: int, connect_timeout: float, read_timeout: float,
    transport: Transport = "aiohttp",
) -> AsyncIterator[Exchange]:
    """An exchange for ``endpoint``: a keep-alive pool of ``concurrency`` connections, TLS
    verified, no redirects, no proxies from the environment, no retries below us; closed on exit.

    ``connect_timeout`` also bounds the wait for a free pooled connection (the request has not
    left then); ``read_timeout`` bounds each read of the answer, and ``connect_timeout +
    read_timeout`` the whole exchange (a deadline: an answer that trickles in is cut, ambiguous).
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    if transport == "aiohttp":
        connector = aiohttp.TCPConnector(limit=concurrency, ssl=ssl.create_default_context())
        async with aiohttp.ClientSession(connector=connector, trust_env=False, auto_decompress=False,
                                         trace_configs=[ready_trace()]) as session:
            yield AiohttpExchange(session, aiohttp.ClientTimeout(
                sock_connect=connect_timeout, sock_read=read_timeout, connect=connect_timeout),
                deadline=connect_timeout + read_timeout)
        return
    if transport == "httpx":
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout,
                                pool=connect_timeout)
        async with httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(verify=True, limits=limits, retries=0),
            timeout=timeout, base_url=endpoint.url, follow_redirects=False, trust_env=False,
        ) as http:
            yield HttpxExchange(http, deadline=connect_timeout + read_timeout)
        return
    raise ValueError(f"transport must be 'aiohttp' or 'httpx', got {transport!r}")


def transport_error(exc: BaseException, context: str) -> TransportError:
    """Translate an httpx or aiohttp failure; state whether the request may have arrived."""
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
