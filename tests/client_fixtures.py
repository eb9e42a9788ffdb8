"""Clients users already have, pointed at a simulator: the official SDK in each signing mode, the
legacy ``aliyun-python-sdk-*`` SDK, and hand-built RPC (V2) requests in the aliyun CLI's wire form."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from alibabacloud_ens20171110.client import Client
from alibabacloud_tea_openapi.models import Config
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest, RpcRequest

from pipeline.ens import signing, signing_v2
from pipeline.simulator import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET

MODES: dict[str, str | None] = {"v3": None, "sm3": signing.ALGORITHM_SM3, "v2": "v2"}
"""The official SDK's ``Config.signature_algorithm`` for each signing mode (None: the default V3)."""


def sdk_client_in(mode: str, endpoint: str, *, key_id: str = DEV_ACCESS_KEY_ID,
                  secret: str = DEV_ACCESS_KEY_SECRET, security_token: str | None = None,
                  protocol: str = "http") -> Client:
    """The official ENS client in signing ``mode`` (``v3``, ``sm3`` or ``v2``)."""
    return Client(Config(endpoint=endpoint, protocol=protocol, access_key_id=key_id,
                         access_key_secret=secret, security_token=security_token,
                         signature_algorithm=MODES[mode]))


def legacy_client(port: int, *, key_id: str = DEV_ACCESS_KEY_ID,
                  secret: str = DEV_ACCESS_KEY_SECRET) -> AcsClient:
    """The legacy ``aliyunsdkcore`` client on a loopback port (no retries: one request per call)."""
    return AcsClient(key_id, secret, "cn-beijing", port=port, auto_retry=False, timeout=10,
                     connect_timeout=5)


def legacy_call(client: AcsClient, request: RpcRequest | CommonRequest, method: str) -> dict[str, Any]:
    """Send a legacy request with ``method`` over plain HTTP to 127.0.0.1; the decoded JSON answer."""
    request.set_endpoint("127.0.0.1")
    request.set_protocol_type("http")
    request.set_method(method)
    request.set_accept_format("JSON")
    return dict(json.loads(client.do_action_with_exception(request)))


def timestamp(seconds_ago: float = 0.0) -> str:
    """An RPC ``Timestamp``: UTC, second precision."""
    return signing.format_timestamp(datetime.now(UTC).timestamp() - seconds_ago)


def rpc_params(action: str, params: Mapping[str, str], *, method: str = "POST",
               key_id: str = DEV_ACCESS_KEY_ID, secret: str = DEV_ACCESS_KEY_SECRET,
               nonce: str | None = None, stamp: str | None = None,
               security_token: str | None = None, cli_extras: bool = True) -> dict[str, str]:
    """Every parameter of a V2-signed request, ``Signature`` included.

    ``cli_extras`` adds what the aliyun CLI's Go SDK adds (empty ``SignatureType``, ``RegionId``).
    """
    extra = {"SignatureType": "", "RegionId": "cn-beijing"} if cli_extras else {}
    return signing_v2.sign_params(
        method=method, action=action, params={**params, **extra}, access_key_id=key_id,
        access_key_secret=secret, timestamp=stamp or timestamp(), nonce=nonce or signing.new_nonce(),
        security_token=security_token,
    )


def rpc_query(params: Mapping[str, str]) -> str:
    """The aliyun CLI's query encoding (Go's ``url.Values.Encode``: ``+`` for space)."""
    return urlencode(sorted(params.items()))


FORM_HEADERS = {"content-type": "application/x-www-form-urlencoded"}
