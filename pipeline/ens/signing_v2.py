"""The older RPC signature (V2, ``HMAC-SHA1``, ``SignatureVersion=1.0``): pure functions, no I/O.

Spec: ``shared/docs/ens-api.md`` §3.7. Every parameter but ``Signature`` (common ones and the
action's, from the query and a form body alike) is signed; the official SDK's
``alibabacloud_tea_openapi.utils.Utils.get_rpcsignature`` is the oracle in the tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping

from pipeline.ens.signing import API_VERSION, canonical_query, percent_encode

SIGNATURE_METHOD = "HMAC-SHA1"
SIGNATURE_VERSION = "1.0"
COMMON: frozenset[str] = frozenset({
    "Action", "Version", "Format", "AccessKeyId", "Signature", "SignatureMethod", "SignatureVersion",
    "SignatureNonce", "SignatureType", "Timestamp", "SecurityToken", "RegionId",
})
"""The RPC common parameters: not the action's own (``RegionId`` is one the legacy SDK adds)."""


def string_to_sign(method: str, params: Iterable[tuple[str, str]]) -> str:
    """``METHOD&%2F&enc(canonicalized query)``; ``params`` without ``Signature``."""
    return f"{method.upper()}&%2F&{percent_encode(canonical_query(params))}"


def signature(secret: str, text: str) -> str:
    """Base64 HMAC-SHA1 of the string to sign, keyed by ``AccessKeySecret + "&"``."""
    digest = hmac.new(f"{secret}&".encode(), text.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def sign_params(
    *,
    method: str,
    action: str,
    params: Mapping[str, str],
    access_key_id: str,
    access_key_secret: str,
    timestamp: str,
    nonce: str,
    security_token: str | None = None,
    version: str = API_VERSION,
) -> dict[str, str]:
    """``params`` plus every common parameter and the ``Signature`` over them all."""
    signed = {
        **params, "Action": action, "Version": version, "Format": "JSON", "AccessKeyId": access_key_id,
        "SignatureMethod": SIGNATURE_METHOD, "SignatureVersion": SIGNATURE_VERSION,
        "SignatureNonce": nonce, "Timestamp": timestamp,
    }
    if security_token:
        signed["SecurityToken"] = security_token
    signed["Signature"] = signature(access_key_secret, string_to_sign(method, signed.items()))
    return signed
