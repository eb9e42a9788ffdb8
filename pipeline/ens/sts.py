"""STS calls behind the role-based sources: AssumeRole (signed) and AssumeRoleWithOIDC (anonymous).

Wire facts: shared/docs/ens-api.md §9. The OIDC token travels in a form body, never in a URL, and
no message here quotes a token, a secret or a body that could hold one.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from pipeline import log as logs
from pipeline.ens import signing
from pipeline.ens.credentials import Credentials
from pipeline.errors import CredentialsError

STS_VERSION = "2015-04-01"
DEFAULT_DURATION = 3600
MIN_DURATION = 900
TIMEOUT = httpx.Timeout(connect=5.0, read=10.0, write=10.0, pool=5.0)
ENV_STS_ENDPOINT = "ALIBABA_CLOUD_STS_ENDPOINT"
ENV_STS_REGION = "ALIBABA_CLOUD_STS_REGION"
ENV_VPC = "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED"


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def sts_endpoint(env: Mapping[str, str], *, region: str | None = None, vpc: bool | None = None) -> str:
    """The STS base URL: ``ALIBABA_CLOUD_STS_ENDPOINT`` (plain http only for loopback), else
    ``sts[-vpc].<region>.aliyuncs.com`` with a region (profile's, then ALIBABA_CLOUD_STS_REGION),
    else ``sts.aliyuncs.com``."""
    named = env.get(ENV_STS_ENDPOINT, "").strip()
    if named:
        url = named if "://" in named else f"https://{named}"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CredentialsError(f"{ENV_STS_ENDPOINT}={named!r} is not an http(s) URL")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise CredentialsError(
                f"{ENV_STS_ENDPOINT}={named!r}: plain http is allowed for loopback only (credentials "
                "travel in the answer); use https://")
        return url.rstrip("/")
    region = region or env.get(ENV_STS_REGION, "").strip() or None
    use_vpc = vpc if vpc is not None else env.get(ENV_VPC, "").strip().lower() == "true"
    if region:
        return f"https://{'sts-vpc' if use_vpc else 'sts'}.{region}.aliyuncs.com"
    return "https://sts.aliyuncs.com"


@dataclass(frozen=True, slots=True)
class RoleRequest:
    """What to ask STS for."""

    role_arn: str
    session_name: str
    duration: int = DEFAULT_DURATION
    policy: str | None = None
    external_id: str | None = None


def default_session_name() -> str:
    """``ens-migrate-<unix time>``, like the SDK's ``credentials-python-<time>``."""
    return f"ens-migrate-{int(time.time())}"


async def assume_role(endpoint: str, source: Credentials, role: RoleRequest, *,
                      clock: Any = time.time) -> Credentials:
    """STS AssumeRole signed with ``source``; the role's temporary credentials."""
    params = {"RoleArn": role.role_arn, "RoleSessionName": role.session_name,
              "DurationSeconds": str(role.duration)}
    if role.policy:
        params["Policy"] = role.policy
    if role.external_id:
        params["ExternalId"] = role.external_id
    parts = urlsplit(endpoint)
    signed = signing.sign_request(
        method="POST", host=parts.netloc, action="AssumeRole", params=params.items(),
        access_key_id=source.access_key_id, access_key_secret=source.access_key_secret,
        security_token=source.security_token, date=signing.format_timestamp(clock()),
        nonce=signing.new_nonce(), version=STS_VERSION)
    headers = {**signed.headers, "accept": "application/json"}
    url = f"{endpoint}/?{signed.query}"
    what = f"STS AssumeRole of {role.role_arn} at {parts.netloc}"
    return await _exchange(url, headers, b"", what, f"role {role.role_arn}")


async def assume_role_with_oidc(endpoint: str, *, role: RoleRequest, provider_arn: str,
                                token: str, clock: Any = time.time) -> Credentials:
    """STS AssumeRoleWithOIDC (anonymous); the OIDC token goes in the form body."""
    logs.register_secrets(token)
    form = {"RoleArn": role.role_arn, "OIDCProviderArn": provider_arn, "OIDCToken": token,
            "RoleSessionName": role.session_name, "DurationSeconds": str(role.duration)}
    if role.policy:
        form["Policy"] = role.policy
    body = urlencode(form).encode("ascii")
    parts = urlsplit(endpoint)
    headers = {"host": parts.netloc, "x-acs-action": "AssumeRoleWithOIDC", "x-acs-version": STS_VERSION,
               "x-acs-date": signing.format_timestamp(clock()), "x-acs-signature-nonce": signing.new_nonce(),
               "x-acs-content-sha256": signing.payload_hash(body),
               "content-type": "application/x-www-form-urlencoded", "accept": "application/json"}
    what = f"STS AssumeRoleWithOIDC of {role.role_arn} at {parts.netloc}"
    return await _exchange(f"{endpoint}/", headers, body, what, f"OIDC role {role.role_arn}")


async def _exchange(url: str, headers: dict[str, str], body: bytes, what: str, source: str) -> Credentials:
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, trust_env=False, follow_redirects=False) as http:
            response = await http.post(url, headers=headers, content=body)
    except httpx.HTTPError as exc:
        raise CredentialsError(f"{what}: no answer ({type(exc).__name__}); check the network and "
                               f"{ENV_STS_ENDPOINT} / {ENV_STS_REGION}") from None
    return parse_sts_answer(response.status_code, response.content, what, source)


def parse_sts_answer(status: int, body: bytes, what: str, source: str) -> Credentials:
    """The ``Credentials`` node of an STS answer, or a CredentialsError naming Code and RequestId."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise CredentialsError(f"{what}: unreadable answer (HTTP {status})")
    if status != 200:
        code, request_id = data.get("Code"), data.get("RequestId")
        message = logs.scrub_text(str(data.get("Message") or ""))[:300]
        raise CredentialsError(f"{what}: refused with {code} (HTTP {status}): {message} "
                               f"[RequestId {request_id or '-'}]; check the role ARN, its trust policy "
                               "and the caller's permission to assume it")
    node = data.get("Credentials")
    return credentials_from(node if isinstance(node, dict) else {}, what, source)


def credentials_from(node: Mapping[str, Any], what: str, source: str) -> Credentials:
    """Credentials from an ``AccessKeyId/AccessKeySecret/SecurityToken/Expiration`` object."""
    key_id, secret, token = node.get("AccessKeyId"), node.get("AccessKeySecret"), node.get("SecurityToken")
    expiration = parse_expiration(node.get("Expiration"))
    if not (isinstance(key_id, str) and key_id and isinstance(secret, str) and secret
            and isinstance(token, str) and token and expiration is not None):
        raise CredentialsError(f"{what}: the answer lacks AccessKeyId, AccessKeySecret, SecurityToken "
                               "or a valid Expiration")
    logs.register_secrets(secret, token)
    return Credentials(key_id, secret, token, source, expiration=expiration, obtained=time.time())


def parse_expiration(value: object) -> float | None:
    """``2026-12-01T20:30:00Z`` as POSIX seconds; None when absent or malformed."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None
