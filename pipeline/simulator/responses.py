"""What the simulator answers: the Reply value, ENS error bodies, JSON encoding."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

JSON_TYPE = b"application/json;charset=utf-8"
DEFAULT_HOST_ID = "ens.aliyuncs.com"


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer, and the outcome it is counted under."""

    status: int
    body: bytes
    outcome: str
    headers: tuple[tuple[bytes, bytes], ...] = field(default=())
    content_type: bytes = JSON_TYPE
    content_length: int | None = None
    """Content-Length when it is not the body's (an OSS HeadObject answers the object's size)."""


def json_reply(data: dict[str, Any], *, status: int = 200, outcome: str = "ok",
               headers: tuple[tuple[bytes, bytes], ...] = ()) -> Reply:
    """A JSON answer; ``RequestId`` in ``data`` is echoed in ``x-acs-request-id``."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    request_id = data.get("RequestId")
    if isinstance(request_id, str):
        headers = (*headers, (b"x-acs-request-id", request_id.encode("ascii")))
    return Reply(status, body, outcome, headers)


def error_reply(
    status: int, code: str, message: str, *, request_id: str, host: str | None,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> Reply:
    """The gateway's error body: ``{RequestId, HostId, Code, Message, Recommend}``."""
    recommend = (
        "https://api.alibabacloud.com/troubleshoot?intl_lang=EN_US"
        f"&q={quote(code, safe='')}&product=Ens&requestId={request_id}"
    )
    return json_reply(
        {"RequestId": request_id, "HostId": host or DEFAULT_HOST_ID, "Code": code, "Message": message,
         "Recommend": recommend},
        status=status, outcome=code, headers=headers,
    )
