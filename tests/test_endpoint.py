"""Endpoint resolution: --endpoint wins, else the SDK's region rule; HTTPS unless loopback."""

from __future__ import annotations

import pytest

from pipeline.ens.endpoint import Endpoint, is_loopback, parse_endpoint, resolve_endpoint
from pipeline.errors import ConfigError

CENTRAL = ["cn-beijing", "cn-chengdu", "cn-hangzhou", "cn-heyuan", "cn-shanghai", "cn-wulanchabu",
           "cn-zhangjiakou"]


@pytest.mark.parametrize("region", CENTRAL)
def test_central_regions_use_the_central_host(region: str) -> None:
    """The SDK's endpoint map sends these regions to ens.aliyuncs.com."""
    assert resolve_endpoint(region=region).url == "https://ens.aliyuncs.com"


@pytest.mark.parametrize("region", ["ap-southeast-1", "cn-guangzhou", "eu-central-1"])
def test_other_regions_use_the_regional_host(region: str) -> None:
    """Other regions follow the rule ens.<region>.aliyuncs.com."""
    assert resolve_endpoint(region=region).url == f"https://ens.{region}.aliyuncs.com"


def test_endpoint_wins_over_region() -> None:
    """An explicit endpoint is used even when a region is set."""
    endpoint = resolve_endpoint(endpoint="https://ens-vpc.cn-zhangjiakou.aliyuncs.com", region="cn-beijing")
    assert endpoint == Endpoint("https", "ens-vpc.cn-zhangjiakou.aliyuncs.com")


def test_bare_host_means_https() -> None:
    """A bare host[:port], as the SDK's Config(endpoint=...) takes, is HTTPS."""
    assert parse_endpoint("ens.aliyuncs.com:8443") == Endpoint("https", "ens.aliyuncs.com", 8443)


@pytest.mark.parametrize(("value", "netloc"), [
    ("http://127.0.0.1:8080", "127.0.0.1:8080"),
    ("http://127.3.4.5:1", "127.3.4.5:1"),
    ("http://localhost:9000/", "localhost:9000"),
    ("http://[::1]:9000", "[::1]:9000"),
])
def test_plain_http_is_accepted_for_loopback(value: str, netloc: str) -> None:
    """http:// is fine for 127.0.0.0/8, ::1 and localhost; the host header keeps the port."""
    endpoint = parse_endpoint(value)
    assert endpoint.scheme == "http"
    assert endpoint.netloc == netloc


def test_plain_http_is_refused_elsewhere() -> None:
    """http:// to a remote host is refused with the reason and the fix."""
    with pytest.raises(ConfigError, match=r"only accepted for loopback.*use https://"):
        parse_endpoint("http://ens.aliyuncs.com")


def test_plain_http_elsewhere_with_explicit_permission() -> None:
    """allow_insecure=True lets plain HTTP reach a remote host."""
    assert parse_endpoint("http://10.0.0.5:80", allow_insecure=True).url == "http://10.0.0.5:80"


@pytest.mark.parametrize("value", ["ftp://ens.aliyuncs.com", "https://", "https://ens.aliyuncs.com:99999",
                                   "https://ens aliyuncs com", "https://ens.aliyuncs.com/path?x=1",
                                   "https://user@ens.aliyuncs.com"])
def test_bad_endpoints_name_the_setting(value: str) -> None:
    """A bad scheme, missing host, bad port, path or credentials is a ConfigError with an example."""
    with pytest.raises(ConfigError, match=r"endpoint .*--endpoint https://"):
        parse_endpoint(value)


def test_no_region_and_no_endpoint() -> None:
    """Without either, the error names both settings."""
    with pytest.raises(ConfigError, match=r"--region.*--endpoint"):
        resolve_endpoint()


def test_garbage_region() -> None:
    """A region that is not a region ID is refused with an example."""
    with pytest.raises(ConfigError, match="cn-hangzhou"):
        resolve_endpoint(region="Hangzhou!")


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.255.0.9", True), ("::1", True), ("LOCALHOST", True),
    ("128.0.0.1", False), ("localhost.example.com", False), ("::2", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    """Loopback means 127.0.0.0/8, ::1 or localhost."""
    assert is_loopback(host) is loopback
