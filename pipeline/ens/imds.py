"""The ECS instance metadata service (RAM role credentials, IMDSv2) and ALIBABA_CLOUD_CREDENTIALS_URI.

Both answer ``{Code, AccessKeyId, AccessKeySecret, SecurityToken, Expiration}``. Metadata calls use
1 s timeouts and never a proxy (``trust_env=False``): 100.100.100.200 is on the instance's own link.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from pipeline import log as logs
from pipeline.ens.credentials import Credentials
from pipeline.ens.sts import credentials_from
from pipeline.errors import CredentialsError

METADATA_HOST = "http://100.100.100.200"
ENV_ENDPOINT = "ENS_MIGRATE_ECS_METADATA_ENDPOINT"
ENV_ROLE = "ALIBABA_CLOUD_ECS_METADATA"
ENV_DISABLED = "ALIBABA_CLOUD_ECS_METADATA_DISABLED"
ENV_IMDSV1_DISABLED = "ALIBABA_CLOUD_IMDSV1_DISABLED"
ENV_URI = "ALIBABA_CLOUD_CREDENTIALS_URI"
TOKEN_TTL = "21600"
METADATA_TIMEOUT = httpx.Timeout(1.0)
URI_TIMEOUT = httpx.Timeout(connect=5.0, read=10.0, write=5.0, pool=5.0)
ROLE_PATH = "/latest/meta-data/ram/security-credentials/"


def metadata_base(env: Mapping[str, str]) -> str:
    """The metadata service's base URL (``ENS_MIGRATE_ECS_METADATA_ENDPOINT`` overrides it)."""
    return (env.get(ENV_ENDPOINT, "").strip() or METADATA_HOST).rstrip("/")


class EcsRoleFetcher:
    """Fetches the instance RAM role's credentials; discovers the role name once when not given."""

    def __init__(self, env: Mapping[str, str], role: str | None) -> None:
        self.base = metadata_base(env)
        self.role = role or None
        self.v1_disabled = env.get(ENV_IMDSV1_DISABLED, "").strip().lower() == "true"

    @property
    def description(self) -> str:
        return f"ECS instance RAM role {self.role or '(discovered)'} via {self.base}"

    async def __call__(self) -> Credentials:
        async with httpx.AsyncClient(timeout=METADATA_TIMEOUT, trust_env=False,
                                     follow_redirects=False) as http:
            headers = await self._token_headers(http)
            if self.role is None:
                names = await self._get(http, ROLE_PATH, headers, "role name")
                role = names.decode("utf-8", "replace").strip().splitlines()
                if not role or not role[0].strip():
                    raise CredentialsError(f"{self.base}: this instance has no RAM role attached; "
                                           f"attach one, or set {ENV_DISABLED}=true and use another source")
                self.role = role[0].strip()
            body = await self._get(http, ROLE_PATH + self.role, headers, f"role {self.role}")
        return credentials_answer(body, f"ECS metadata role {self.role}",
                                  f"ECS instance RAM role {self.role}")

    async def _token_headers(self, http: httpx.AsyncClient) -> dict[str, str]:
        try:
            response = await http.put(f"{self.base}/latest/api/token",
                                      headers={"X-aliyun-ecs-metadata-token-ttl-seconds": TOKEN_TTL})
            if response.status_code == 200 and response.text.strip():
                token = response.text.strip()
                logs.register_secrets(token)
                return {"X-aliyun-ecs-metadata-token": token}
            problem = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            problem = type(exc).__name__
        if self.v1_disabled:
            raise CredentialsError(f"{self.base}: no IMDSv2 token ({problem}) and {ENV_IMDSV1_DISABLED}=true")
        return {}

    async def _get(self, http: httpx.AsyncClient, path: str, headers: dict[str, str], what: str) -> bytes:
        try:
            response = await http.get(f"{self.base}{path}", headers=headers)
        except httpx.HTTPError as exc:
            raise CredentialsError(f"ECS metadata service {self.base} ({what}): no answer "
                                   f"({type(exc).__name__}); not on ECS? set {ENV_DISABLED}=true") from None
        if response.status_code != 200:
            raise CredentialsError(f"ECS metadata service {self.base} ({what}): HTTP "
                                   f"{response.status_code}; is the RAM role attached to this instance?")
        return response.content


class UriFetcher:
    """GETs ``ALIBABA_CLOUD_CREDENTIALS_URI``."""

    def __init__(self, uri: str) -> None:
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CredentialsError(f"{ENV_URI}={uri!r} is not an http(s) URL")
        self.uri = uri
        self.where = f"{parts.scheme}://{parts.netloc}{parts.path}"
        """Shown in messages: no query string (it may carry a token)."""

    @property
    def description(self) -> str:
        return f"credentials URI {self.where}"

    async def __call__(self) -> Credentials:
        try:
            async with httpx.AsyncClient(timeout=URI_TIMEOUT, trust_env=False,
                                         follow_redirects=False) as http:
                response = await http.get(self.uri)
        except httpx.HTTPError as exc:
            raise CredentialsError(
                f"credentials URI {self.where}: no answer ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise CredentialsError(f"credentials URI {self.where}: HTTP {response.status_code}")
        return credentials_answer(response.content, f"credentials URI {self.where}", self.description)


def credentials_answer(body: bytes, what: str, source: str) -> Credentials:
    """Credentials from a metadata/URI answer; ``Code`` must be ``Success``."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise CredentialsError(f"{what}: the answer is not a JSON object")
    if data.get("Code") != "Success":
        raise CredentialsError(f"{what}: Code is {data.get('Code')!r}, not 'Success'")
    return credentials_from(data, what, source)
