"""The simulator authenticates like the ENS gateway (ens-api.md §3.6): strict, and replay-proof."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest

from pipeline.ens import signing
from pipeline.simulator import DEV_ACCESS_KEY_SECRET, Simulator, SimulatorConfig
from pipeline.simulator.auth import NonceMemory
from tests.simulator_fixtures import VALID, error_code, in_process, signed, simulator

__all__ = ["simulator"]

HOST = "ens.test"


async def post(client: httpx.AsyncClient, target: str, headers: dict[str, str],
               content: bytes = b"") -> httpx.Response:
    return await client.post(target, headers=headers, content=content)


@pytest.mark.asyncio
async def test_hand_signed_request_is_accepted() -> None:
    """A request signed with pipeline.ens.signing and the configured pair creates an image."""
    client, state = in_process()
    async with client:
        response = await post(client, *signed(HOST))
    assert response.status_code == 200
    assert len(state.images) == 1


@pytest.mark.asyncio
async def test_tampered_signature_over_socket(simulator: Simulator) -> None:
    """One altered hex digit in Signature: SignatureDoesNotMatch, HTTP 400, nothing created."""
    target, headers = signed(simulator.endpoint)
    last = headers["authorization"][-1]
    headers["authorization"] = headers["authorization"][:-1] + ("0" if last != "0" else "1")
    async with httpx.AsyncClient(base_url=simulator.url) as client:
        response = await post(client, target, headers)
    assert (response.status_code, error_code(response)) == (400, "SignatureDoesNotMatch")
    assert simulator.images() == []


@pytest.mark.asyncio
async def test_wrong_secret_is_refused() -> None:
    """A signature made with another secret: SignatureDoesNotMatch."""
    client, state = in_process()
    async with client:
        response = await post(client, *signed(HOST, secret="guessed"))
    assert (response.status_code, error_code(response)) == (400, "SignatureDoesNotMatch")
    assert len(state.images) == 0


@pytest.mark.asyncio
async def test_unknown_access_key_is_404() -> None:
    """An AccessKeyId the simulator does not know: InvalidAccessKeyId.NotFound, HTTP 404."""
    client, _ = in_process()
    async with client:
        response = await post(client, *signed(HOST, key_id="LTAIunknown"))
    assert (response.status_code, error_code(response)) == (404, "InvalidAccessKeyId.NotFound")


@pytest.mark.asyncio
async def test_replayed_nonce_is_refused() -> None:
    """The same signed request sent twice: the second is SignatureNonceUsed and creates nothing."""
    client, state = in_process()
    target, headers = signed(HOST)
    async with client:
        first = await post(client, target, headers)
        second = await post(client, target, headers)
    assert first.status_code == 200
    assert (second.status_code, error_code(second)) == (400, "SignatureNonceUsed")
    assert len(state.images) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("minutes", [-16, 16])
async def test_date_outside_fifteen_minutes_is_expired(minutes: int) -> None:
    """An x-acs-date more than 15 minutes off the server clock: InvalidTimeStamp.Expired."""
    client, _ = in_process()
    date = signing.format_date(datetime.now(UTC) + timedelta(minutes=minutes))
    async with client:
        response = await post(client, *signed(HOST, date=date))
    assert (response.status_code, error_code(response)) == (400, "InvalidTimeStamp.Expired")


@pytest.mark.asyncio
async def test_server_clock_offset_expires_fresh_dates() -> None:
    """With clock_offset=1200 the server is 20 minutes ahead: a correct client is refused."""
    client, _ = in_process(SimulatorConfig(clock_offset=1200))
    async with client:
        response = await post(client, *signed(HOST))
    assert error_code(response) == "InvalidTimeStamp.Expired"


@pytest.mark.asyncio
async def test_malformed_date_is_refused() -> None:
    """An x-acs-date not in YYYY-MM-DDTHH:MM:SSZ form: InvalidTimeStamp.Format."""
    client, _ = in_process()
    async with client:
        response = await post(client, *signed(HOST, date="2026-01-01 00:00:00"))
    assert error_code(response) == "InvalidTimeStamp.Format"


@pytest.mark.asyncio
async def test_missing_authorization_is_400() -> None:
    """No Authorization header: MissingAuthorization, HTTP 400."""
    client, _ = in_process()
    target, headers = signed(HOST)
    del headers["authorization"]
    async with client:
        response = await post(client, target, headers)
    assert (response.status_code, error_code(response)) == (400, "MissingAuthorization")


@pytest.mark.asyncio
async def test_unsigned_acs_header_is_incomplete() -> None:
    """An x-acs-* header that is sent but not in SignedHeaders: IncompleteSignature."""
    client, _ = in_process()
    target, headers = signed(HOST)
    headers["x-acs-retry-attempts"] = "1"
    async with client:
        response = await post(client, target, headers)
    assert (response.status_code, error_code(response)) == (400, "IncompleteSignature")


@pytest.mark.asyncio
async def test_host_must_be_signed() -> None:
    """A SignedHeaders list without host: IncompleteSignature."""
    client, _ = in_process()
    target, headers = signed(HOST)
    headers["authorization"] = headers["authorization"].replace("SignedHeaders=host;", "SignedHeaders=")
    async with client:
        response = await post(client, target, headers)
    assert error_code(response) == "IncompleteSignature"


@pytest.mark.asyncio
async def test_body_must_match_content_sha256() -> None:
    """A body that differs from what x-acs-content-sha256 announces is refused."""
    client, state = in_process()
    target, headers = signed(HOST)
    async with client:
        response = await post(client, target, headers, content=b"ImageName=other")
    assert error_code(response) == "SignatureDoesNotMatch"
    assert len(state.images) == 0


@pytest.mark.asyncio
async def test_sts_token_refused_when_not_configured() -> None:
    """A security token the simulator was not given is refused."""
    client, _ = in_process()
    async with client:
        response = await post(client, *signed(HOST, security_token="forged"))
    assert error_code(response).startswith("InvalidSecurityToken")


@pytest.mark.asyncio
async def test_sts_token_accepted_when_configured() -> None:
    """The configured STS token, signed with x-acs-accesskey-id, is accepted."""
    client, _ = in_process(SimulatorConfig(security_token="tok"))
    async with client:
        response = await post(client, *signed(HOST, security_token="tok"))
    assert response.status_code == 200


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("action", "version"), [("ImportImages", signing.API_VERSION), ("ImportImage", "2014-05-26")],
)
async def test_unknown_action_or_version_is_404(action: str, version: str) -> None:
    """An action ENS 2017-11-10 does not have: InvalidAction.NotFound, HTTP 404."""
    client, _ = in_process()
    async with client:
        response = await post(client, *signed(HOST, action=action, version=version))
    assert (response.status_code, error_code(response)) == (404, "InvalidAction.NotFound")


def _resign_with_query(query: str) -> tuple[str, dict[str, str]]:
    _, headers = signed(HOST, params={**VALID, "OSSObject": "dir/a b*(1)!~.qcow2"})
    return f"/?{query}", headers


@pytest.mark.asyncio
async def test_sync_client_url_encoding_verifies() -> None:
    """The sync SDK's URL (urlencode: '+' for space, '%2A') decodes to what was signed."""
    client, state = in_process()
    query = urlencode({**VALID, "OSSObject": "dir/a b*(1)!~.qcow2"})
    assert "+" in query
    assert "%2A" in query
    async with client:
        response = await post(client, *_resign_with_query(query))
    assert response.status_code == 200, response.text
    assert state.images_snapshot()[0]["Params"]["OSSObject"] == "dir/a b*(1)!~.qcow2"


@pytest.mark.asyncio
async def test_async_client_url_encoding_verifies() -> None:
    """The async SDK's URL (yarl: '*', '/', '(', ')', '!' raw) decodes to what was signed."""
    client, _ = in_process()
    query = urlencode({**VALID, "OSSObject": "dir/a b*(1)!~.qcow2"}, safe="*/()!~")
    assert "b*(1)!" in query
    async with client:
        response = await post(client, *_resign_with_query(query))
    assert response.status_code == 200, response.text


@pytest.mark.asyncio
async def test_every_answer_has_a_fresh_request_id() -> None:
    """Successes and errors alike carry a new upper-case RequestId, echoed in x-acs-request-id."""
    client, _ = in_process()
    async with client:
        answers = [await post(client, *signed(HOST, secret=s)) for s in (DEV_ACCESS_KEY_SECRET, "x", "y")]
    ids = [a.json()["RequestId"] for a in answers]
    assert len(set(ids)) == 3
    assert ids == [i.upper() for i in ids]
    assert [a.headers["x-acs-request-id"] for a in answers] == ids


def test_nonce_memory_is_bounded_and_pruned_by_age() -> None:
    """Old nonces are forgotten after the retention time, and never more than max_entries are kept."""
    memory = NonceMemory(max_entries=3, retention=10.0)
    assert memory.add(("k", "a"), 0.0)
    assert not memory.add(("k", "a"), 5.0)
    assert memory.add(("k", "a2"), 5.0)
    assert memory.add(("k", "a"), 10.0)  # pruned by age, so seen as new
    for i in range(10):
        memory.add(("k", f"n{i}"), 11.0)
    assert len(memory) <= 3
