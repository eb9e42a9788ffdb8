"""Shared helpers for the simulator tests: SDK clients, hand-signed requests, running simulators."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from alibabacloud_ens20171110 import models
from alibabacloud_ens20171110.client import Client
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions

from pipeline.ens import signing
from pipeline.simulator import (
    DEV_ACCESS_KEY_ID,
    DEV_ACCESS_KEY_SECRET,
    Simulator,
    SimulatorApp,
    SimulatorConfig,
    SimulatorState,
    SimulatorThread,
    serve_simulator,
)

VALID: Mapping[str, str] = {
    "ImageName": "centos-7",
    "ComputeType": "ens_vm",
    "OSType": "linux",
    "ImageFormat": "qcow2",
    "Architecture": "x86_64",
    "OSSBucket": "bucket",
    "OSSObject": "images/centos-7.qcow2",
    "OSSRegion": "cn-beijing",
}
"""A complete, valid ImportImage parameter set."""


def sdk_client(endpoint: str, *, key_id: str = DEV_ACCESS_KEY_ID, secret: str = DEV_ACCESS_KEY_SECRET,
               security_token: str | None = None) -> Client:
    """The official ENS client pointed at a simulator over plain HTTP."""
    return Client(Config(endpoint=endpoint, protocol="http", access_key_id=key_id,
                         access_key_secret=secret, security_token=security_token))


def sdk_import_request(name: str = "centos-7", **overrides: Any) -> models.ImportImageRequest:
    """An ImportImageRequest for the SDK, valid unless ``overrides`` say otherwise."""
    fields: dict[str, Any] = {
        "image_name": name, "compute_type": "ens_vm", "ostype": "linux", "image_format": "qcow2",
        "architecture": "x86_64", "ossbucket": "bucket", "ossobject": f"images/{name}.qcow2",
        "ossregion": "cn-beijing",
    }
    fields.update(overrides)
    return models.ImportImageRequest(**fields)


RUNTIME = RuntimeOptions()


def now_date() -> str:
    """``x-acs-date`` for now."""
    return signing.format_date(datetime.now(UTC))


def signed(
    host: str,
    action: str = "ImportImage",
    params: Mapping[str, str] | None = None,
    *,
    key_id: str = DEV_ACCESS_KEY_ID,
    secret: str = DEV_ACCESS_KEY_SECRET,
    date: str | None = None,
    nonce: str | None = None,
    security_token: str | None = None,
    body: bytes = b"",
    version: str = signing.API_VERSION,
) -> tuple[str, dict[str, str]]:
    """``(path_and_query, headers)`` of a V3-signed POST built with ``pipeline.ens.signing``."""
    request = signing.sign_request(
        method="POST", host=host, action=action, params=list((params or VALID).items()),
        access_key_id=key_id, access_key_secret=secret, security_token=security_token,
        date=date or now_date(), nonce=nonce or signing.new_nonce(), body=body, version=version,
    )
    return f"/?{request.query}", request.headers


def error_code(response: httpx.Response) -> str:
    """The ``Code`` of an ENS error body."""
    body = response.json()
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    return str(body["Code"])


def in_process(config: SimulatorConfig | None = None) -> tuple[httpx.AsyncClient, SimulatorState]:
    """An httpx client wired to a fresh simulator through ``ASGITransport`` (no socket)."""
    state = SimulatorState(config or SimulatorConfig(available_after=0))
    transport = httpx.ASGITransport(app=SimulatorApp(state))
    return httpx.AsyncClient(transport=transport, base_url="http://ens.test"), state


@pytest_asyncio.fixture
async def simulator() -> AsyncIterator[Simulator]:
    """A default simulator on a loopback socket, in the test's event loop."""
    async with serve_simulator(SimulatorConfig(available_after=0, seed=1)) as sim:
        yield sim


@pytest.fixture
def simulator_thread() -> Iterator[SimulatorThread]:
    """A default simulator in its own thread, for the sync SDK client."""
    with SimulatorThread(SimulatorConfig(available_after=0, seed=1)) as sim:
        yield sim


async def call(client: httpx.AsyncClient, host: str, action: str = "ImportImage",
               params: Mapping[str, str] | None = None, **kwargs: Any) -> httpx.Response:
    """POST one hand-signed request (see ``signed``) and return the answer."""
    target, headers = signed(host, action, params, **kwargs)
    return await client.post(target, headers=headers)
