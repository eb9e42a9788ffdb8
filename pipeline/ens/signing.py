"""ACS3-HMAC-SHA256 and ACS3-HMAC-SM3 (Alibaba Cloud V3) request signing: pure functions, no I/O.

Spec: ``shared/docs/ens-api.md`` §3. The official SDK's
``alibabacloud_tea_openapi.utils.Utils.get_authorization`` is the oracle in the tests. SM3 is the
same scheme with SM3 for both the hashes and the HMAC (the SDK's ``ACS3-HMAC-SM3``; its payload hash
still travels in ``x-acs-content-sha256``). SM3 comes from OpenSSL through ``hashlib`` (OpenSSL 1.1.1
and 3.x ship it); the older RPC signature is in ``signing_v2``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

ALGORITHM = "ACS3-HMAC-SHA256"
ALGORITHM_SM3 = "ACS3-HMAC-SM3"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
API_VERSION = "2017-11-10"

_DIGESTS = {ALGORITHM: "sha256", ALGORITHM_SM3: "sm3"}
ALGORITHMS: tuple[str, ...] = tuple(_DIGESTS)
"""The V3 algorithms the SDKs offer for an access key pair (RSA is for key pairs of another kind)."""


def algorithm_available(algorithm: str) -> bool:
    """True when this Python can compute ``algorithm`` (SM3 needs an OpenSSL that has it)."""
    digest = _DIGESTS.get(algorithm)
    return digest is not None and digest in hashlib.algorithms_available


def _hex_digest(algorithm: str, data: bytes) -> str:
    if algorithm == ALGORITHM:
        return hashlib.sha256(data).hexdigest()
    return hashlib.new(_DIGESTS[algorithm], data).hexdigest()


_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")


def percent_encode(value: str) -> str:
    """RFC 3986 encoding: unreserved ``A-Za-z0-9-_.~`` kept, all else ``%XX`` (space ``%20``)."""
    # Most values (ens_vm, linux, qcow2, names) need no escaping; skip quote()'s work for them.
    return value if _UNRESERVED.issuperset(value) else quote(value, safe="~")


def canonical_query(params: Iterable[tuple[str, str]]) -> str:
    """Sorted ``name=value`` pairs, names and values percent-encoded once, joined by ``&``."""
    return "&".join(
        f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params)
    )


def payload_hash(body: bytes, algorithm: str = ALGORITHM) -> str:
    """Lowercase hex SHA-256 (or SM3) of the body (``x-acs-content-sha256``)."""
    if algorithm == ALGORITHM and not body:
        return EMPTY_SHA256
    return _hex_digest(algorithm, body)


def canonical_request(
    *,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    hashed_payload: str,
) -> str:
    """The canonical request of §3.2; ``headers`` keys are lower-case, ``signed_headers`` sorted."""
    canonical_headers = "".join(f"{h}:{headers[h].strip()}\n" for h in signed_headers)
    return "\n".join(
        (method.upper(), path or "/", query, canonical_headers, ";".join(signed_headers),
         hashed_payload)
    )


def string_to_sign(canonical: str, algorithm: str = ALGORITHM) -> str:
    """``ALGORITHM + "\\n" + hex(hash(canonical request))``."""
    return f"{algorithm}\n{_hex_digest(algorithm, canonical.encode('utf-8'))}"


def signature(secret: str, canonical: str, algorithm: str = ALGORITHM) -> str:
    """Hex HMAC-SHA256 (or HMAC-SM3) of the string to sign, keyed by the raw AccessKeySecret."""
    digestmod = hashlib.sha256 if algorithm == ALGORITHM else _DIGESTS[algorithm]
    return hmac.new(secret.encode("utf-8"), string_to_sign(canonical, algorithm).encode("utf-8"),
                    digestmod).hexdigest()


def new_nonce() -> str:
    """A fresh 32-hex-character nonce; every attempt gets its own (a retry is a new signature)."""
    return secrets.token_hex(16)


def format_date(moment: datetime) -> str:
    """``x-acs-date``: UTC, second precision, ``YYYY-MM-DDTHH:MM:SSZ``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_timestamp(seconds: float) -> str:
    """``x-acs-date`` from POSIX seconds (what ``time.time`` gives); cheaper than a datetime."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What to put on the wire: the encoded query string and every header, Authorization included."""

    query: str
    headers: dict[str, str]


def sign_request(
    *,
    method: str,
    host: str,
    action: str,
    params: Iterable[tuple[str, str]],
    access_key_id: str,
    access_key_secret: str,
    security_token: str | None,
    date: str,
    nonce: str,
    body: bytes = b"",
    version: str = API_VERSION,
    content_type: str | None = None,
    extra_headers: Mapping[str, str] | None = None,
    algorithm: str = ALGORITHM,
) -> SignedRequest:
    """Build the signed headers of an RPC-style V3 request.

    Signed: ``host``, every ``x-acs-*`` (the STS pair ``x-acs-security-token`` and
    ``x-acs-accesskey-id`` included when there is a token), ``content-type`` when there is one,
    and ``extra_headers``. Headers added afterwards (``accept``, ``user-agent``) travel unsigned,
    which the gateway allows. The returned ``query`` is already the canonical (RFC 3986)
    encoding; send it verbatim so what ENS decodes is exactly what was signed. ``algorithm`` is
    ``ALGORITHM`` or ``ALGORITHM_SM3``.
    """
    hashed = payload_hash(body, algorithm)
    headers: dict[str, str] = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": date,
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": hashed,
    }
    if security_token:
        headers["x-acs-security-token"] = security_token
        headers["x-acs-accesskey-id"] = access_key_id
    if content_type:
        headers["content-type"] = content_type
    if extra_headers:
        headers.update({k.lower(): v for k, v in extra_headers.items()})
    signed = sorted(headers)
    query = canonical_query(params)
    canonical = canonical_request(
        method=method, path="/", query=query, headers=headers, signed_headers=signed,
        hashed_payload=hashed,
    )
    headers["authorization"] = (
        f"{algorithm} Credential={access_key_id},SignedHeaders={';'.join(signed)},"
        f"Signature={signature(access_key_secret, canonical, algorithm)}"
    )
    return SignedRequest(query=query, headers=headers)


@dataclass(frozen=True, slots=True)
class Authorization:
    """A parsed ``Authorization`` header."""

    algorithm: str
    credential: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Authorization | None:
    """Parse ``ACS3-HMAC-SHA256 Credential=..,SignedHeaders=..,Signature=..``; None if malformed."""
    algorithm, _, rest = value.strip().partition(" ")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            return None
        parts[key] = val
    try:
        return Authorization(
            algorithm=algorithm,
            credential=parts["Credential"],
            signed_headers=tuple(h for h in parts["SignedHeaders"].split(";") if h),
            signature=parts["Signature"],
        )
    except KeyError:
        return None
