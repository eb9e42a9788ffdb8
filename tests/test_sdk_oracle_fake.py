"""Every request the CLI sends verifies with the official SDK's own signing function.

An independent ENS fake (http.server in a thread, no code of ours on the server side) recomputes
each Authorization header with ``alibabacloud_tea_openapi.utils.Utils.get_authorization`` over the
decoded query and the signed headers, and records the parameters that arrive.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from alibabacloud_tea_openapi.utils import Utils
from darabonba.request import DaraRequest

from pipeline.config import load_config
from pipeline.joblist.job import Job
from pipeline.joblist.rules import job_rules
from pipeline.joblist.validate import iter_rows
from pipeline.simulator.config import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET
from tests.run_helpers import cli

ROOT = Path(__file__).resolve().parent.parent


class _OracleFake(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.imports: list[dict[str, str]] = []
        self.refused: list[str] = []
        self.actions: list[str] = []


class _Handler(BaseHTTPRequestHandler):
    server: _OracleFake

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        auth = headers.get("authorization", "")
        signed = auth.split("SignedHeaders=", 1)[1].split(",", 1)[0].split(";") if auth else []
        request = DaraRequest()
        request.method, request.pathname, request.query = "POST", "/", query
        request.headers = {h: headers[h] for h in signed if h in headers}
        expected = Utils.get_authorization(request, "ACS3-HMAC-SHA256", Utils.hex_encode(
            Utils.hash(body, "ACS3-HMAC-SHA256")), DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET)
        action = headers.get("x-acs-action", "")
        with self.server.lock:
            self.server.actions.append(action)
            if expected != auth:
                self.server.refused.append(f"{action}: {auth!r} != {expected!r}")
                self._answer(400, {"RequestId": str(uuid.uuid4()), "Code": "SignatureDoesNotMatch",
                                   "Message": "oracle refused"})
                return
            if action == "ImportImage":
                self.server.imports.append(query)
                self._answer(200, {"RequestId": str(uuid.uuid4()),
                                   "ImageId": "m-" + uuid.uuid4().hex[:25]})
                return
        self._answer(200, {"RequestId": str(uuid.uuid4()), "Code": 0, "PageNumber": 1, "PageSize": 50,
                           "TotalCount": 0, "Images": {"Image": []}})

    def _answer(self, status: int, data: dict[str, Any]) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def oracle() -> Iterator[_OracleFake]:
    server = _OracleFake()
    # shutdown() waits for the serve loop's next poll: 0.5 s by default, per test.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("job_list", ["jobs/example.csv", "jobs/example.json"])
def test_every_request_verifies_with_the_sdk_and_params_equal_the_jobs(
        oracle: _OracleFake, tmp_path: Path, job_list: str) -> None:
    """The SDK's get_authorization accepts every request, and what arrives equals each job's query."""
    url = f"http://127.0.0.1:{oracle.server_address[1]}"
    result = cli("run", str(ROOT / job_list), "--endpoint", url, "--journal", str(tmp_path / "j.jsonl"),
                 "--rate", "200", "--quiet")
    assert result.returncode == 0, result.stderr
    assert oracle.refused == []
    jobs = [j for j in iter_rows([str(ROOT / job_list)], job_rules(load_config(None))) if isinstance(j, Job)]
    assert sorted(oracle.imports, key=lambda q: q["ImageName"]) == sorted(
        (j.query() for j in jobs), key=lambda q: q["ImageName"])
    assert "DescribeSelfImages" in oracle.actions
