"""Where ENS requests go: the endpoint from --endpoint or the region, HTTPS unless loopback."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline.errors import ConfigError

CENTRAL_REGIONS: frozenset[str] = frozenset(
    {"cn-beijing", "cn-chengdu", "cn-hangzhou", "cn-heyuan", "cn-shanghai", "cn-wulanchabu",
     "cn-zhangjiakou"}
)
"""Regions the official SDK's endpoint map sends to ``ens.aliyuncs.com`` (ens-api.md §2.6)."""

CENTRAL_HOST = "ens.aliyuncs.com"
_REGION = re.compile(r"^[a-z]{2,}(?:-[a-z0-9]+)+$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
_EXAMPLE = "e.g. --endpoint https://ens.aliyuncs.com or --endpoint http://127.0.0.1:8080"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A validated ENS endpoint."""

    scheme: str
    """``https``, or ``http`` for loopback (or when insecure HTTP was allowed explicitly)."""
    host: str
    """Host name or IP address, without brackets."""
    port: int | None = None
    """Explicit port, None for the scheme's default."""

    @property
    def netloc(self) -> str:
        """``host[:port]`` as sent in the ``host`` header (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL, ``scheme://host[:port]``, no trailing slash."""
        return f"{self.scheme}://{self.netloc}"

    def __str__(self) -> str:
        return self.url


def resolve_endpoint(
    *, endpoint: str | None = None, region: str | None = None, allow_insecure: bool = False
) -> Endpoint:
    """Pick the endpoint: ``endpoint`` wins; else the official SDK's rule for ``region``."""
    if endpoint:
        return parse_endpoint(endpoint, allow_insecure=allow_insecure)
    if not region:
        raise ConfigError(
            "no ENS endpoint: set the region (--region, e.g. cn-hangzhou) or an endpoint "
            f"({_EXAMPLE})"
        )
    region = region.strip()
    if not _REGION.match(region):
        raise ConfigError(
            f"region {region!r} is not a region ID; use one like cn-hangzhou or ap-southeast-1 "
            "(--region)"
        )
    host = CENTRAL_HOST if region in CENTRAL_REGIONS else f"ens.{region}.aliyuncs.com"
    return Endpoint("https", host)


def parse_endpoint(value: str, *, allow_insecure: bool = False) -> Endpoint:
    """Validate ``--endpoint``: ``https://host[:port]``, a bare ``host[:port]`` (HTTPS), or
    ``http://`` for a loopback host (any host only when ``allow_insecure``)."""
    text = value.strip()
    raw = text if "://" in text else f"https://{text}"
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"endpoint {value!r} is not a URL ({exc}); {_EXAMPLE}") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ConfigError(
            f"endpoint {value!r}: scheme {parts.scheme!r} is not supported; use https:// "
            f"(or http:// for a loopback address); {_EXAMPLE}"
        )
    host = parts.hostname or ""
    if not _valid_host(host):
        raise ConfigError(f"endpoint {value!r} has no valid host name; {_EXAMPLE}")
    if parts.username is not None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(
            f"endpoint {value!r} must be only scheme://host[:port] (ENS RPC calls always go to /); "
            f"{_EXAMPLE}"
        )
    if scheme == "http" and not (allow_insecure or is_loopback(host)):
        raise ConfigError(
            f"endpoint {value!r}: plain http:// would send signed requests unencrypted and is "
            "only accepted for loopback hosts (127.0.0.0/8, ::1, localhost); use https://, "
            "or pass --insecure-http to allow it"
        )
    return Endpoint(scheme, host, port)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME.match(host))
    return True
