"""V3 signing against the official SDK's own implementation (the oracle)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from alibabacloud_tea_openapi.utils import Utils
from darabonba.request import DaraRequest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.ens import signing
from pipeline.joblist.job import PARAMETERS, encode_disk_mapping

AWKWARD = "中文 名称*~/+%&=:#?@!'()[]{}\"\\,;é\t"
values = st.text(alphabet=st.sampled_from(AWKWARD) | st.characters(exclude_categories=("Cs",)),
                 max_size=24)
mappings = st.lists(
    st.fixed_dictionaries({}, optional={k: values for k in ("OSSBucket", "OSSObject", "OSSRegion")}),
    max_size=3,
).map(encode_disk_mapping)
names = st.sampled_from(PARAMETERS) | st.from_regex(r"[A-Za-z][A-Za-z0-9.]{0,12}", fullmatch=True)
param_sets = st.dictionaries(names, values, max_size=8).flatmap(
    lambda p: st.one_of(st.just(p), mappings.map(lambda m: {**p, "DiskDeviceMapping": m}))
)


def oracle(query: dict[str, str], headers: dict[str, str], secret: str) -> str:
    """The SDK's Authorization for the same request, signing exactly ``headers``."""
    request = DaraRequest()
    request.method = "POST"
    request.pathname = "/"
    request.query = query
    request.headers = headers
    return str(Utils.get_authorization(request, "ACS3-HMAC-SHA256", headers["x-acs-content-sha256"],
                                       "LTAI5tExampleKey", secret))


def sign(params: dict[str, str], token: str | None = None, secret: str = "s3cr3t") -> signing.SignedRequest:
    return signing.sign_request(
        method="POST", host="ens.aliyuncs.com", action="ImportImage", params=params.items(),
        access_key_id="LTAI5tExampleKey", access_key_secret=secret, security_token=token,
        date="2024-05-06T07:08:09Z", nonce="0123456789abcdef0123456789abcdef",
    )


@given(params=param_sets, token=st.none() | st.text(alphabet="abcXYZ019+/=", min_size=1, max_size=40),
       secret=st.text(alphabet=st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30))
def test_authorization_equals_the_official_sdk(params: dict[str, str], token: str | None,
                                               secret: str) -> None:
    """For any parameters (CJK, reserved characters, empty values, DiskDeviceMapping JSON) and
    with or without an STS token, our Authorization equals the SDK's for the headers we sign."""
    signed = sign(params, token, secret)
    headers = {k: v for k, v in signed.headers.items() if k != "authorization"}
    assert signed.headers["authorization"] == oracle(params, headers, secret)


def test_percent_encoding_is_rfc3986() -> None:
    """Space is %20, ``*`` is %2A, ``~`` stays, ``/`` and ``+`` are escaped, UTF-8 bytes upper-case."""
    assert signing.percent_encode("a b*c~d/e+f中") == "a%20b%2Ac~d%2Fe%2Bf%E4%B8%AD"


def test_canonical_query_sorts_by_name_and_keeps_empty_values() -> None:
    """Parameters are sorted by name; an empty value still appears as ``name=``."""
    query = signing.canonical_query([("b", "2"), ("a", ""), ("C", "x y")])
    assert query == "C=x%20y&a=&b=2"


def test_signed_headers_are_host_and_x_acs() -> None:
    """Without a token or a body, exactly host and the x-acs-* headers are signed."""
    auth = signing.parse_authorization(sign({"ImageName": "n"}).headers["authorization"])
    assert auth is not None
    assert auth.signed_headers == ("host", "x-acs-action", "x-acs-content-sha256", "x-acs-date",
                                   "x-acs-signature-nonce", "x-acs-version")


def test_sts_token_headers_are_sent_and_signed() -> None:
    """An STS token travels as x-acs-security-token with x-acs-accesskey-id, both signed."""
    signed = sign({"ImageName": "n"}, token="TOKEN")
    auth = signing.parse_authorization(signed.headers["authorization"])
    assert auth is not None
    assert signed.headers["x-acs-security-token"] == "TOKEN"
    assert signed.headers["x-acs-accesskey-id"] == "LTAI5tExampleKey"
    assert {"x-acs-security-token", "x-acs-accesskey-id"} <= set(auth.signed_headers)


def test_content_type_is_signed_when_present() -> None:
    """A request with a content type signs it."""
    signed = signing.sign_request(
        method="POST", host="h", action="A", params=(), access_key_id="id", access_key_secret="s",
        security_token=None, date="2024-01-01T00:00:00Z", nonce="n", body=b"a=1",
        content_type="application/x-www-form-urlencoded",
    )
    auth = signing.parse_authorization(signed.headers["authorization"])
    assert auth is not None
    assert "content-type" in auth.signed_headers
    assert signed.headers["x-acs-content-sha256"] == signing.payload_hash(b"a=1")


def test_query_returned_is_the_canonical_one() -> None:
    """The query to send is the canonical query, so what arrives is what was signed."""
    params = {"ImageName": "a b", "OSSObject": "x/y*"}
    assert sign(params).query == signing.canonical_query(params.items())


def test_date_is_utc_to_the_second() -> None:
    """x-acs-date is UTC with second precision, from a datetime or from POSIX seconds."""
    moment = datetime(2024, 5, 6, 9, 8, 9, 999_999, tzinfo=timezone(timedelta(hours=2)))
    assert signing.format_date(moment) == "2024-05-06T07:08:09Z"
    assert signing.format_timestamp(moment.timestamp()) == "2024-05-06T07:08:09Z"
    assert signing.format_timestamp(datetime(2030, 1, 1, tzinfo=UTC).timestamp()) == "2030-01-01T00:00:00Z"


def test_nonces_are_fresh_32_hex() -> None:
    """Every nonce is 32 lower-case hex characters and never repeats."""
    nonces = {signing.new_nonce() for _ in range(1000)}
    assert len(nonces) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", n) for n in nonces)


def test_parse_authorization_rejects_garbage() -> None:
    """A malformed Authorization header parses to None rather than raising."""
    assert signing.parse_authorization("ACS3-HMAC-SHA256 nonsense") is None
    assert signing.parse_authorization("ACS3-HMAC-SHA256 Credential=a,Signature=b") is None
