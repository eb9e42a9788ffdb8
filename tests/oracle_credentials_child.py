"""Child process for tests/test_credentials_oracle.py: what the official ``alibabacloud-credentials``
resolves for each configuration.

The library reads its environment at import time, so each configuration sets ``os.environ`` and
reloads its two settings modules. Its fixed hosts (the metadata service 100.100.100.200 and the
public STS hosts, over https) are redirected to the loopback fakes the parent serves: nothing
leaves this machine. Reads a JSON list of configurations on stdin, writes a JSON list of results.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Any

from alibabacloud_credentials.utils import auth_constant, auth_util
from Tea.core import TeaCore

REDIRECT: dict[str, str] = {}
_compose = TeaCore.compose_url


def _compose_url(request: Any) -> str:
    host = request.headers.get("host", "").split(":")[0]
    target = REDIRECT.get(host) or (REDIRECT.get("sts") if host.startswith("sts") else None)
    if target:
        request.headers["host"] = target
        request.protocol = "http"
        request.port = 80
    return _compose(request)


TeaCore.compose_url = staticmethod(_compose_url)  # type: ignore[method-assign]


def resolve(config: dict[str, Any]) -> dict[str, Any]:
    """What the library's default chain returns for one configuration."""
    for name in [n for n in os.environ if n.startswith("ALIBABA_CLOUD_")]:
        del os.environ[name]
    os.environ.update(config["env"])
    os.environ["HOME"] = config["home"]
    importlib.reload(auth_constant)
    importlib.reload(auth_util)
    from alibabacloud_credentials.client import Client

    try:
        model = Client().get_credential()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "id": model.access_key_id, "secret": model.access_key_secret,
            "token": model.security_token or None}


def main() -> int:
    """Resolve every configuration on stdin; print the results."""
    request = json.load(sys.stdin)
    REDIRECT.update(request["redirect"])
    print(json.dumps([resolve(config) for config in request["configs"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
