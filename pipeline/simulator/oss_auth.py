"""OSS V4 signature checks (``OSS4-HMAC-SHA256``), the server side of what the OSS SDK V2 signs."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import quote, unquote

ALGORITHM = "OSS4-HMAC-SHA256"
MAX_SKEW = 15 * 60.0
_AUTH = re.compile(r"^OSS4-HMAC-SHA256 Credential=(?P<cred>[^,]+)"
                   r"(?:,AdditionalHeaders=(?P<extra>[^,]*))?,Signature=(?P<sig>[0-9a-f]{64})$")


def signing_key(secret: str, date: str, region: str, product: str = "oss") -> bytes:
    """HMAC-SHA256 chain: ``aliyun_v4<secret>`` -> date -> region -> product -> ``aliyun_v4_request``."""
    key = ("aliyun_v4" + secret).encode()
    for part in (date, region, product, "aliyun_v4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def canonical_request(method: str, path: str, query: str, headers: Mapping[str, str],
                      additional: list[str]) -> str:
    """The canonical request over the decoded path, the raw query (pairs sorted) and signed headers."""
    # Each pair re-encoded (RFC 3986 unreserved kept): a client's HTTP stack may send '/' where the
    # signer encoded '%2F' (aiohttp's URL normalisation does), and OSS signs the encoded form.
    pairs = sorted((_enc(k), _enc(v)) for k, _, v in (p.partition("=") for p in query.split("&") if p))
    canonical_query = "&".join(f"{k}={v}" if v else k for k, v in pairs)
    signed = sorted((k, v) for k, v in headers.items()
                    if k.startswith("x-oss-") or k in ("content-type", "content-md5") or k in additional)
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in signed)
    payload = headers.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD")
    return (f"{method}\n{quote(path, safe='/')}\n{canonical_query}\n{canonical_headers}\n"
            f"{';'.join(additional)}\n{payload}")


def _enc(text: str) -> str:
    return quote(unquote(text), safe="-_.~")


class OssVerifier:
    """Checks the V4 Authorization header of each OSS request against one key pair (and token)."""

    def __init__(self, access_key_id: str, access_key_secret: str, *, security_token: str | None = None,
                 extra: Callable[[str], tuple[str, str | None] | None] | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.security_token = security_token
        self.extra = extra
        """Other key pairs (STS-issued): id -> (secret, token) or None."""
        self.wall = wall

    def verify(self, method: str, path: str, query: str,
               headers: Mapping[str, str]) -> tuple[str, str] | None:
        """None when the signature holds, else (Code, Message) of OSS's 403."""
        match = _AUTH.match(headers.get("authorization", ""))
        if match is None:
            return "AccessDenied", "AccessDenied: missing or malformed OSS4-HMAC-SHA256 Authorization header"
        key_id, _, scope = match["cred"].partition("/")
        date, _, rest = scope.partition("/")
        region, _, tail = rest.partition("/")
        if tail != "oss/aliyun_v4_request":
            return "InvalidArgument", f"bad credential scope {scope!r}"
        if key_id == self.access_key_id:
            secret, token = self.access_key_secret, self.security_token
        elif self.extra is not None and (found := self.extra(key_id)) is not None:
            secret, token = found
        else:
            return "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records."
        if token is not None and headers.get("x-oss-security-token") != token:
            return "InvalidAccessKeyId", "The security token you provided is invalid."
        stamp = headers.get("x-oss-date", "")
        try:
            when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            return "AccessDenied", f"x-oss-date {stamp!r} is not yyyymmddTHHMMSSZ"
        if abs(when - self.wall()) > MAX_SKEW or stamp[:8] != date:
            return ("RequestTimeTooSkewed",
                    "The difference between the request time and the current time is too large.")
        additional = [h for h in (match["extra"] or "").split(";") if h]
        string_to_sign = "\n".join((ALGORITHM, stamp, scope, hashlib.sha256(
            canonical_request(method, path, query, headers, additional).encode()).hexdigest()))
        expected = hmac.new(signing_key(secret, date, region), string_to_sign.encode(),
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, match["sig"]):
            return ("SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you provided.")
        return None
