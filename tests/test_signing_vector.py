"""The official V3 test vector (ens-api.md §3.5) reproduced exactly."""

from __future__ import annotations

from pipeline.ens import signing


def test_official_v3_vector() -> None:
    """Our canonical request and signature equal the published fixed-parameter example."""
    headers = {
        "host": "ecs.cn-shanghai.aliyuncs.com",
        "x-acs-action": "RunInstances",
        "x-acs-version": "2014-05-26",
        "x-acs-date": "2023-10-26T10:22:32Z",
        "x-acs-signature-nonce": "3156853299f313e23d1673dc12e1703d",
        "x-acs-content-sha256": signing.EMPTY_SHA256,
    }
    query = signing.canonical_query(
        [("RegionId", "cn-shanghai"), ("ImageId", "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd")]
    )
    canonical = signing.canonical_request(
        method="POST", path="/", query=query, headers=headers, signed_headers=sorted(headers),
        hashed_payload=signing.EMPTY_SHA256,
    )
    assert signing.signature("YourAccessKeySecret", canonical) == (
        "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    )
