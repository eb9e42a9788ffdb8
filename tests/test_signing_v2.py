"""RPC V2 and ACS3-HMAC-SM3 signing agree with the documented vectors and the official SDK's functions."""

from __future__ import annotations

from alibabacloud_tea_openapi.utils import Utils
from darabonba.request import DaraRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ens import signing, signing_v2

VECTOR = {
    "AccessKeyId": "testid", "Action": "DescribeDedicatedHosts", "Format": "JSON", "RegionId": "cn-beijing",
    "SignatureMethod": "HMAC-SHA1", "SignatureNonce": "edb2b34af0af9a6d14deaf7c1a5315eb",
    "SignatureVersion": "1.0", "Timestamp": "2023-03-13T08:34:30Z", "Version": "2014-05-26",
}
values = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


def test_v2_documented_vector() -> None:
    """ens-api.md §3.7: the same parameters give different signatures for GET and POST."""
    assert signing_v2.signature("testsecret", signing_v2.string_to_sign("GET", VECTOR.items())) == (
        "9NaGiOspFP5UPcwX8Iwt2YJXXuk=")
    assert signing_v2.signature("testsecret", signing_v2.string_to_sign("POST", VECTOR.items())) == (
        "ZvQ9xGiFnquSJRvj+WE6kdSpTwU=")


@settings(max_examples=60, deadline=None)
@given(params=st.dictionaries(st.sampled_from(["ImageName", "OSSObject", "OSSBucket", "A.1.B"]), values),
       method=st.sampled_from(["GET", "POST"]))
def test_v2_matches_the_sdk(params: dict[str, str], method: str) -> None:
    """Any parameter values: our V2 signature equals ``Utils.get_rpcsignature``."""
    ours = signing_v2.signature("sec", signing_v2.string_to_sign(method, params.items()))
    assert ours == Utils.get_rpcsignature(params, method, "sec")


@settings(max_examples=40, deadline=None)
@given(value=values)
def test_sm3_authorization_matches_the_sdk(value: str) -> None:
    """ACS3-HMAC-SM3 Authorization from ``sign_request`` equals ``Utils.get_authorization``'s."""
    ours = signing.sign_request(
        method="POST", host="ens.aliyuncs.com", action="ImportImage", params=[("ImageName", value)],
        access_key_id="AKID", access_key_secret="SECRET", security_token=None,
        date="2024-01-01T00:00:00Z", nonce="abc123", algorithm=signing.ALGORITHM_SM3,
    )
    request = DaraRequest()
    request.method, request.pathname, request.query = "POST", "/", {"ImageName": value}
    request.headers = {k: v for k, v in ours.headers.items() if k != "authorization"}
    payload = request.headers["x-acs-content-sha256"]
    assert payload == Utils.hash(b"", signing.ALGORITHM_SM3).hex()
    expected = Utils.get_authorization(request, signing.ALGORITHM_SM3, payload, "AKID", "SECRET")
    assert ours.headers["authorization"] == expected
