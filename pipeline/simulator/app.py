"""The simulator as a raw ASGI app: routing, gateway checks, quota, faults, inspection endpoints."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import anyio

from pipeline.ens.signing import API_VERSION
from pipeline.errors import ConfigError
from pipeline.simulator.actions import READ_ACTIONS, import_image_reply
from pipeline.simulator.auth import AuthRequest
from pipeline.simulator.faults import BEFORE, GARBAGE_HTML, LATE, ConnectionFinder, drop_connection
from pipeline.simulator.oss import handle_oss, parse_objects
from pipeline.simulator.responses import Reply, error_reply, json_reply
from pipeline.simulator.state import SimulatorState, new_request_id
from pipeline.simulator.sts import STS_ACTIONS, STS_VERSION
from pipeline.simulator.validation import validate_import
from pipeline.simulator.wire import Wire, decode

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

ACTIONS = frozenset({"ImportImage", *READ_ACTIONS})
DESCRIBE_ACTIONS = frozenset({"DescribeImages", "DescribeSelfImages"})
MAX_BODY = 1 << 20
DROPPED = "dropped"


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


async def read_body(receive: Receive) -> bytes:
    """The whole request body (bounded)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise ClientGone
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def send_reply(send: Send, reply: Reply) -> None:
    """Write one complete answer."""
    length = len(reply.body) if reply.content_length is None else reply.content_length
    headers = [(b"content-type", reply.content_type), (b"content-length", str(length).encode()),
               *reply.headers]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": reply.body, "more_body": False})


def _is_loopback(scope: Scope) -> bool:
    client = scope.get("client")
    if not client:
        return True
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return client[0] in ("localhost", "testclient")


class SimulatorApp:
    """ASGI 3 app: ``POST /`` is the ENS API, ``/_sim/*`` the loopback-only inspection endpoints."""

    def __init__(self, state: SimulatorState, *, finder: ConnectionFinder | None = None) -> None:
        self.state = state
        self.finder = finder
        """How to find a connection's transport when ``send`` does not lead to it (set by the server)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            body = await read_body(receive)
        except ClientGone:
            return
        path = scope["path"]
        if path == "/":
            await self._api(scope, receive, send, body)
        elif path.startswith("/_sim/"):
            await send_reply(send, self._inspect(scope, body))
        else:
            # Path style OSS on the same port: /<bucket>/<key> (a bucket name has no '_').
            await send_reply(send, self._oss(scope))

    def _oss(self, scope: Scope) -> Reply:
        headers = {k.decode("latin-1").lower(): v.decode("utf-8", "replace") for k, v in scope["headers"]}
        state = self.state
        return handle_oss(state.oss, state.oss_verifier, scope["method"], scope["path"],
                          scope["query_string"], headers, new_request_id(), state.monotonic())

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _api(self, scope: Scope, receive: Receive, send: Send, body: bytes) -> None:
        headers = {
            k.decode("latin-1").lower(): v.decode("utf-8", "replace") for k, v in scope["headers"]
        }
        wire = decode(headers, scope["query_string"], body)
        action = wire.action
        label = action if action in ACTIONS else "Other"
        importing = action == "ImportImage"
        state = self.state
        stats = state.stats
        stats.started(importing=importing, now=state.monotonic())
        if action in DESCRIBE_ACTIONS:
            stats.describe_arrived(state.monotonic())
        try:
            reply = await self._handle(scope, headers, body, wire, importing)
            stats.outcome(label, reply.outcome)
            if reply.outcome == DROPPED:
                await drop_connection(scope, receive, send, self.finder)
            else:
                await send_reply(send, reply)
        finally:
            stats.finished(importing=importing)

    async def _handle(self, scope: Scope, headers: dict[str, str], body: bytes, wire: Wire,
                      importing: bool) -> Reply:
        state = self.state
        request_id = new_request_id()
        host = headers.get("host")
        method = scope["method"]
        if method not in ("POST", "GET"):
            return _not_found(request_id, host)
        request = AuthRequest(method, scope["path"], wire.query, headers, body, form=wire.form)
        if wire.action in STS_ACTIONS and wire.version == STS_VERSION:
            return self._sts(request, wire, request_id, host)
        failure = state.verifier.verify(request)
        if failure is not None:
            return error_reply(failure.status, failure.code, failure.message, request_id=request_id,
                               host=host)
        action = wire.action
        if wire.version != API_VERSION or action not in ACTIONS:
            return _not_found(request_id, host)
        params = wire.params
        if importing:
            return await self._import(params, request_id, host)
        if action in DESCRIBE_ACTIONS:
            refused = await self._describe_gate(action, request_id, host)
            if refused is not None:
                return refused
        elif action == "DeleteImage":
            fault = state.delete_faults.draw()
            if fault is not None:
                state.stats.faults[f"delete_{fault}"] += 1
                if fault != "drop_after":
                    return _fault_reply(fault, request_id, host)
                reply = READ_ACTIONS[action](state, params, request_id, host)
                # Deleted (or refused) as asked, but the answer never reaches the client.
                return Reply(0, b"", DROPPED) if reply.status == 200 else reply
        return READ_ACTIONS[action](state, params, request_id, host)

    async def _describe_gate(self, action: str, request_id: str, host: str | None) -> Reply | None:
        """Quota and faults of a Describe call: a reply that refuses it, or None to serve it (a
        ``slow`` one after ``slow_seconds``)."""
        state = self.state
        fault = state.describe_faults.draw()
        if fault == "throttle" or not state.describe_limiters[action].try_acquire(state.monotonic()):
            if fault == "throttle":
                state.stats.faults["describe_throttle"] += 1
            state.stats.describe_throttled += 1
            extra = () if state.config.retry_after_ms is None else (
                (b"x-acs-retry-after", str(state.config.retry_after_ms).encode()),)
            return error_reply(400, "Throttling.User", "Request was denied due to user flow control.",
                               request_id=request_id, host=host, headers=extra)
        if fault is not None:
            state.stats.faults[f"describe_{fault}"] += 1
            if fault == "slow":
                await anyio.sleep(state.config.slow_seconds)
                return None
            return _fault_reply(fault, request_id, host)
        return None

    def _sts(self, request: AuthRequest, wire: Wire, request_id: str, host: str | None) -> Reply:
        """STS on the same port: AssumeRoleWithOIDC is anonymous, AssumeRole signed like any call."""
        if wire.action == "AssumeRole":
            failure = self.state.verifier.verify(request)
            if failure is not None:
                return error_reply(failure.status, failure.code, failure.message, request_id=request_id,
                                   host=host)
        return self.state.sts.handle(wire.action, wire.params, request_id, host)

    async def _import(self, params: dict[str, str], request_id: str, host: str | None) -> Reply:
        state = self.state
        config = state.config
        if config.deny_all:
            return error_reply(400, "NoPermission", "Permission denied.", request_id=request_id, host=host)
        if not state.limiter.try_acquire(state.monotonic()):
            state.stats.throttled += 1
            extra = () if config.retry_after_ms is None else (
                (b"x-acs-retry-after", str(config.retry_after_ms).encode()),)
            return error_reply(400, "Throttling.User", "Request was denied due to user flow control.",
                               request_id=request_id, host=host, headers=extra)
        fault = state.faults.draw()
        delay = state.faults.latency()
        if delay > 0:
            await anyio.sleep(delay)
        if fault in BEFORE:
            state.stats.faults[fault] += 1
            return _fault_reply(fault, request_id, host)
        invalid = validate_import(params)
        if invalid is not None:
            return error_reply(400, invalid.code, invalid.message, request_id=request_id, host=host)
        if fault in LATE:
            # The backend goes on working after the client gave up: shielded from a disconnect.
            with anyio.CancelScope(shield=True):
                await anyio.sleep(config.late_seconds)
                image = state.create_image(params, request_id)
                state.stats.faults[fault] += 1
            if fault == "late_503":
                return _fault_reply("error503", request_id, host)
            return import_image_reply(image, request_id)
        image = state.create_image(params, request_id)
        if fault is not None:
            state.stats.faults[fault] += 1
            if fault == "drop_after":
                return Reply(0, b"", DROPPED)
            if fault == "nonce_replay":
                return error_reply(400, "SignatureNonceUsed", "Specified signature nonce was used already.",
                                   request_id=request_id, host=host)
            await anyio.sleep(config.slow_seconds)
        return import_image_reply(image, request_id)

    def _inspect(self, scope: Scope, body: bytes = b"") -> Reply:
        request_id = new_request_id()
        if not _is_loopback(scope):
            return error_reply(403, "Forbidden", "The /_sim endpoints answer loopback clients only.",
                               request_id=request_id, host=None)
        route = (scope["method"], scope["path"])
        state = self.state
        if route == ("GET", "/_sim/stats"):
            return json_reply(state.stats_snapshot())
        if route == ("GET", "/_sim/images"):
            name = dict(parse_qsl(scope["query_string"].decode("utf-8", "replace"))).get("ImageName")
            images = state.images_snapshot(name)
            return json_reply({"TotalCount": len(images), "Images": images})
        if route == ("POST", "/_sim/images"):
            # An image made behind the tool's back (another process, the console): what an audit
            # must notice. Query: ImageName (required), any other ImportImage parameter.
            params = dict(parse_qsl(scope["query_string"].decode("utf-8", "replace")))
            if not params.get("ImageName"):
                return error_reply(400, "MissingParameter", "ImageName is mandatory for this action.",
                                   request_id=request_id, host=None)
            image = state.create_image(params, request_id, count=False)
            return json_reply({"ImageId": image.image_id, "RequestId": request_id})
        if route == ("GET", "/_sim/oss"):
            return json_reply({"Calls": dict(state.oss.calls), "Times": state.oss.times})
        if route == ("POST", "/_sim/oss/objects"):
            # More objects uploaded (JSON Lines, as --oss-objects): "the catalog grows".
            try:
                added = parse_objects(body.decode("utf-8").splitlines(), "POST /_sim/oss/objects")
            except (ConfigError, UnicodeDecodeError) as exc:
                return error_reply(400, "InvalidParameter", str(exc), request_id=request_id, host=None)
            state.oss.add(added)
            return json_reply({"Added": len(added), "RequestId": request_id})
        if route == ("POST", "/_sim/reset"):
            state.reset()
            return json_reply({"Reset": True})
        return _not_found(request_id, None)


def _not_found(request_id: str, host: str | None) -> Reply:
    return error_reply(404, "InvalidAction.NotFound",
                       "Specified api is not found, please check your url and method.",
                       request_id=request_id, host=host)


def _fault_reply(fault: str, request_id: str, host: str | None) -> Reply:
    if fault == "error500":
        return error_reply(
            500, "InternalError",
            "The request processing has failed due to some unknown error, exception or failure.",
            request_id=request_id, host=host,
        )
    if fault == "error503":
        return error_reply(503, "ServiceUnavailable",
                           "The request has failed due to a temporary failure of the server.",
                           request_id=request_id, host=host)
    if fault == "garbage":
        return Reply(502, GARBAGE_HTML, "garbage", content_type=b"text/html")
    return Reply(0, b"", DROPPED)

