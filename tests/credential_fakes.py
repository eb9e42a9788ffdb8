"""Loopback fakes for the credential sources: an ECS metadata service (IMDSv2) and a credentials
URI, both handing out temporary credentials they get from the simulator's STS (AssumeRole)."""

from __future__ import annotations

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio

from pipeline.ens import sts
from pipeline.ens.credentials import Credentials
from pipeline.simulator.config import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET

ROLE = "ens-migrate-role"
ROLE_ARN = "acs:ram::1234567890:role/ens-migrate"


def assume(sim_url: str) -> Credentials:
    """Fresh temporary credentials from the simulator's STS, signed with the dev pair."""
    base = Credentials(DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET)
    role = sts.RoleRequest(ROLE_ARN, "fake-source")
    return anyio.run(lambda: sts.assume_role(sim_url, base, role))


def answer(creds: Credentials) -> dict[str, Any]:
    """The metadata/URI JSON for ``creds``."""
    assert creds.expiration is not None
    return {"Code": "Success", "AccessKeyId": creds.access_key_id, "AccessKeySecret": creds.access_key_secret,
            "SecurityToken": creds.security_token,
            "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(creds.expiration))),
            "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


class CredentialFakes:
    """One loopback HTTP server: ``/latest/...`` is the metadata service, ``/creds`` the URI."""

    def __init__(self, sim_url: str | None, *, static: dict[str, Any] | None = None,
                 require_token: bool = True) -> None:
        self.sim_url = sim_url
        self.static = static
        self.require_token = require_token
        self.metadata_token = "imds-token-canary-" + secrets.token_hex(8)
        self.served: list[str] = []
        """Every secret and token handed out (for the canary checks)."""
        self.fetches = 0
        self.token_puts = 0
        self.lock = threading.Lock()
        fakes = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_PUT(self) -> None:
                if self.path == "/latest/api/token" and self.headers.get(
                        "X-aliyun-ecs-metadata-token-ttl-seconds"):
                    with fakes.lock:
                        fakes.token_puts += 1
                    self._send(200, fakes.metadata_token.encode())
                else:
                    self._send(404, b"not found")

            def do_GET(self) -> None:
                prefix = "/latest/meta-data/ram/security-credentials/"
                if self.path.startswith(prefix):
                    if fakes.require_token and self.headers.get("X-aliyun-ecs-metadata-token") \
                            != fakes.metadata_token:
                        self._send(401, b"token required")
                        return
                    role = self.path[len(prefix):]
                    if not role:
                        self._send(200, ROLE.encode())
                        return
                    if role != ROLE:
                        self._send(404, b"no such role")
                        return
                    self._send(200, fakes.credentials())
                elif self.path.startswith("/creds"):
                    self._send(200, fakes.credentials())
                else:
                    self._send(404, b"not found")

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # shutdown() waits for the serve loop's next poll: 0.5 s by default, per use.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01},
                                       daemon=True)

    def credentials(self) -> bytes:
        """One answer: the fixed one, or fresh credentials from the simulator's STS."""
        with self.lock:
            self.fetches += 1
        if self.static is not None:
            data = self.static
        else:
            assert self.sim_url is not None
            creds = assume(self.sim_url)
            data = answer(creds)
        with self.lock:
            self.served += [str(data.get("AccessKeySecret")), str(data.get("SecurityToken"))]
        return json.dumps(data).encode()

    def __enter__(self) -> CredentialFakes:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
