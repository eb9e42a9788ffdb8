"""V2 (HMAC-SHA1) and ACS3-HMAC-SM3 are checked as strictly as V3, over a real socket (issue #14)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import httpx
import pytest
import pytest_asyncio
from alibabacloud_tea_openapi.exceptions import ClientException

from pipeline.ens import signing
from pipeline.simulator import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET, SimulatorConfig, serve_simulator
from tests.client_fixtures import FORM_HEADERS, rpc_params, rpc_query, sdk_client_in, timestamp
from tests.simulator_fixtures import RUNTIME, VALID, error_code, sdk_import_request

MODES = ("v3", "sm3", "v2")
SIXTEEN_MINUTES = 16 * 60


@dataclass(frozen=True)
class Built:
    """One signed request, ready to send."""

    method: str
    target: str
    headers: dict[str, str]
    content: bytes = b""


def build(mode: str, host: str, params: dict[str, str] | None = None, *, secret: str = DEV_ACCESS_KEY_SECRET,
          key_id: str = DEV_ACCESS_KEY_ID, age: float = 0.0, nonce: str | None = None,
          token: str | None = None, form: bool = False) -> Built:
    """An ImportImage signed in ``mode``; ``age`` seconds old; V2 optionally as a form body."""
    params = dict(VALID if params is None else params)
    if mode == "v2":
        signed = rpc_params("ImportImage", params, key_id=key_id, secret=secret, nonce=nonce,
                            stamp=timestamp(age), security_token=token)
        if form:
            return Built("POST", "/", dict(FORM_HEADERS), rpc_query(signed).encode())
        return Built("POST", f"/?{rpc_query(signed)}", {})
    moment = datetime.now(UTC) - timedelta(seconds=age)
    request = signing.sign_request(
        method="POST", host=host, action="ImportImage", params=list(params.items()), access_key_id=key_id,
        access_key_secret=secret, security_token=token, date=signing.format_date(moment),
        nonce=nonce or signing.new_nonce(),
        algorithm=signing.ALGORITHM_SM3 if mode == "sm3" else signing.ALGORITHM,
    )
    return Built("POST", f"/?{request.query}", request.headers)


@pytest_asyncio.fixture
async def http() -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A client bound to a fresh simulator on a loopback socket, and the simulator's host:port."""
    async with serve_simulator(SimulatorConfig(available_after=0, seed=1)) as sim, \
            httpx.AsyncClient(base_url=sim.url) as client:
        yield client, sim.endpoint


async def send(client: httpx.AsyncClient, built: Built) -> httpx.Response:
    return await client.request(built.method, built.target, headers=built.headers, content=built.content)


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_good_request_is_accepted(http: tuple[httpx.AsyncClient, str], mode: str) -> None:
    client, host = http
    response = await send(client, build(mode, host))
    assert response.status_code == 200, response.text
    assert response.json()["ImageId"].startswith("m-")


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_wrong_secret(http: tuple[httpx.AsyncClient, str], mode: str) -> None:
    client, host = http
    response = await send(client, build(mode, host, secret="guessed"))
    assert (response.status_code, error_code(response)) == (400, "SignatureDoesNotMatch")


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_sixteen_minutes_old_is_expired(http: tuple[httpx.AsyncClient, str], mode: str) -> None:
    client, host = http
    response = await send(client, build(mode, host, age=SIXTEEN_MINUTES))
    assert (response.status_code, error_code(response)) == (400, "InvalidTimeStamp.Expired")


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_reused_nonce(http: tuple[httpx.AsyncClient, str], mode: str) -> None:
    """The same nonce in a second, freshly signed request: SignatureNonceUsed."""
    client, host = http
    nonce = signing.new_nonce()
    first = await send(client, build(mode, host, nonce=nonce))
    second = await send(client, build(mode, host, {**VALID, "ImageName": "other"}, nonce=nonce))
    assert first.status_code == 200
    assert (second.status_code, error_code(second)) == (400, "SignatureNonceUsed")


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_tampered_parameter(http: tuple[httpx.AsyncClient, str], mode: str) -> None:
    """A parameter changed after signing (OSSObject): SignatureDoesNotMatch."""
    client, host = http
    built = build(mode, host)
    target = built.target.replace("images%2Fcentos-7.qcow2", "images%2Fevil.qcow2")
    assert target != built.target
    response = await send(client, Built(built.method, target, built.headers))
    assert (response.status_code, error_code(response)) == (400, "SignatureDoesNotMatch")


@pytest.mark.asyncio
async def test_v2_tampered_form_body(http: tuple[httpx.AsyncClient, str]) -> None:
    """V2 signed over a form body, then a body parameter changed: SignatureDoesNotMatch."""
    client, host = http
    built = build("v2", host, form=True)
    content = built.content.replace(b"images%2Fcentos-7.qcow2", b"images%2Fevil.qcow2")
    assert content != built.content
    response = await send(client, Built("POST", "/", built.headers, content))
    assert (response.status_code, error_code(response)) == (400, "SignatureDoesNotMatch")
    assert (await send(client, built)).status_code == 200


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_unknown_key(http: tuple[httpx.AsyncClient, str], mode: str) -> None:
    client, host = http
    response = await send(client, build(mode, host, key_id="LTAIunknown"))
    assert (response.status_code, error_code(response)) == (404, "InvalidAccessKeyId.NotFound")


@pytest.mark.asyncio
async def test_v2_missing_common_parameter() -> None:
    """A V2 request without Timestamp: MissingTimestamp (nothing created)."""
    async with serve_simulator(SimulatorConfig(available_after=0)) as sim, \
            httpx.AsyncClient(base_url=sim.url) as client:
        params = rpc_params("ImportImage", dict(VALID))
        del params["Timestamp"]
        response = await client.post(f"/?{urlencode(params)}")
        assert (response.status_code, error_code(response)) == (400, "MissingTimestamp")
        assert sim.images() == []


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_sts_simulator_requires_its_token(mode: str) -> None:
    """Given an STS token, the simulator refuses a request without one and one with another."""
    config = SimulatorConfig(access_key_id="STS.key", access_key_secret="s3cret", security_token="tok")
    async with serve_simulator(config) as sim, httpx.AsyncClient(base_url=sim.url) as client:
        keys = {"key_id": "STS.key", "secret": "s3cret"}
        without = await send(client, build(mode, sim.endpoint, **keys))
        forged = await send(client, build(mode, sim.endpoint, token="forged", **keys))
        good = await send(client, build(mode, sim.endpoint, token="tok", **keys))
    assert (without.status_code, error_code(without)) == (400, "MissingSecurityToken")
    assert error_code(forged) == "InvalidSecurityToken.Malformed"
    assert good.status_code == 200, good.text


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", MODES)
async def test_official_sdk_sees_the_refusals(mode: str) -> None:
    """Through the official SDK in each mode: wrong secret and missing STS token are ClientExceptions."""
    config = SimulatorConfig(access_key_id="STS.key", access_key_secret="s3cret", security_token="tok")
    async with serve_simulator(config) as sim:
        wrong = sdk_client_in(mode, sim.endpoint, key_id="STS.key", secret="nope", security_token="tok")
        with pytest.raises(ClientException) as caught:
            await wrong.import_image_with_options_async(sdk_import_request(), RUNTIME)
        assert caught.value.code == "SignatureDoesNotMatch"
        no_token = sdk_client_in(mode, sim.endpoint, key_id="STS.key", secret="s3cret")
        with pytest.raises(ClientException) as caught:
            await no_token.import_image_with_options_async(sdk_import_request(), RUNTIME)
        assert caught.value.code == "MissingSecurityToken"
        good = sdk_client_in(mode, sim.endpoint, key_id="STS.key", secret="s3cret", security_token="tok")
        imported = await good.import_image_with_options_async(sdk_import_request(), RUNTIME)
        assert imported.body.image_id.startswith("m-")
