"""Gateway-strict V3 (ACS3-HMAC-SHA256) request verification, with replay and clock checks."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.ens import signing

DATE_WINDOW = 15 * 60
"""Maximum |server clock - x-acs-date|, seconds (ens-api.md §3.1)."""
NONCE_RETENTION = 2 * DATE_WINDOW
"""A request dated up to 15 minutes ahead stays replayable for 30 minutes after it arrives."""

REQUIRED_SIGNED: tuple[str, ...] = (
    "host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256",
)


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """What verification reads from one HTTP request; header names lower-case."""

    method: str
    path: str
    query: Sequence[tuple[str, str]]
    """The query decoded with ``parse_qsl`` (``+`` as space, blanks kept): any of the SDKs' encodings."""
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """The gateway's refusal: HTTP status, code and message."""

    status: int
    code: str
    message: str


def _incomplete(detail: str) -> AuthFailure:
    return AuthFailure(400, "IncompleteSignature",
                       f"The request signature does not conform to Aliyun standards. {detail}")


class NonceMemory:
    """Nonces seen recently, bounded in count and pruned by age (oldest first)."""

    def __init__(self, *, max_entries: int, retention: float = NONCE_RETENTION) -> None:
        self._max = max_entries
        self._retention = retention
        self._order: deque[tuple[float, tuple[str, str]]] = deque()
        self._seen: set[tuple[str, str]] = set()

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, key: tuple[str, str], now: float) -> bool:
        """Remember ``key``; False if it was already seen (a replay)."""
        order, seen = self._order, self._seen
        while order and (order[0][0] <= now - self._retention or len(order) >= self._max):
            seen.discard(order.popleft()[1])
        if key in seen:
            return False
        seen.add(key)
        order.append((now, key))
        return True


class Verifier:
    """Checks a request like the ENS gateway; ``verify`` returns None or the refusal."""

    def __init__(
        self,
        *,
        access_key_id: str,
        access_key_secret: str,
        security_token: str | None = None,
        clock_offset: float = 0.0,
        max_nonces: int = 200_000,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secrets = {access_key_id: access_key_secret}
        self._token = security_token
        self._offset = clock_offset
        self._wall = wall
        self._monotonic = monotonic
        self.nonces = NonceMemory(max_entries=max_nonces)

    def verify(self, request: AuthRequest) -> AuthFailure | None:
        """None when the request is authentic, fresh and not a replay."""
        headers = request.headers
        value = headers.get("authorization")
        if not value:
            return AuthFailure(400, "MissingAuthorization", "Authorization is mandatory for this action.")
        auth = signing.parse_authorization(value)
        if auth is None:
            return _incomplete("The Authorization header is malformed.")
        if auth.algorithm != signing.ALGORITHM:
            return _incomplete(f"Unsupported signature algorithm {auth.algorithm!r}.")
        problem = self._signed_set_problem(auth.signed_headers, headers)
        if problem:
            return _incomplete(problem)
        secret = self._secrets.get(auth.credential)
        if secret is None:
            return AuthFailure(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        failure = self._token_problem(auth.credential, headers) or self._date_problem(headers["x-acs-date"])
        if failure:
            return failure
        hashed = signing.payload_hash(request.body)
        if headers["x-acs-content-sha256"] != hashed:
            return AuthFailure(400, "SignatureDoesNotMatch",
                               "The x-acs-content-sha256 header does not match the SHA-256 of the body.")
        query = signing.canonical_query(request.query)
        canonical = signing.canonical_request(
            method=request.method, path=request.path, query=query, headers=headers,
            signed_headers=auth.signed_headers, hashed_payload=hashed,
        )
        expected = signing.signature(secret, canonical)
        if not hmac.compare_digest(expected, auth.signature):
            digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
            return AuthFailure(
                400, "SignatureDoesNotMatch",
                "Specified signature does not match our calculation. "
                f"server string to sign is:{signing.ALGORITHM}\n{digest}",
            )
        if not self.nonces.add((auth.credential, headers["x-acs-signature-nonce"]), self._monotonic()):
            return AuthFailure(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        return None

    @staticmethod
    def _signed_set_problem(signed: tuple[str, ...], headers: Mapping[str, str]) -> str | None:
        signed_set = set(signed)
        for name in signed:
            if name != name.lower() or name not in headers:
                return f"Signed header {name!r} is not in the request."
        for name in REQUIRED_SIGNED:
            if name not in signed_set:
                return f"Header {name!r} is required and must be signed."
        for name in headers:
            if name.startswith("x-acs-") and name not in signed_set:
                return f"Header {name!r} is sent but not signed."
        return None

    def _token_problem(self, credential: str, headers: Mapping[str, str]) -> AuthFailure | None:
        token = headers.get("x-acs-security-token")
        if token is None:
            return None
        if self._token is None or not hmac.compare_digest(token, self._token):
            return AuthFailure(400, "InvalidSecurityToken.Malformed", "Specified SecurityToken is malformed.")
        key_id = headers.get("x-acs-accesskey-id")
        if key_id is not None and key_id != credential:
            return AuthFailure(400, "InvalidSecurityToken.MismatchWithAccessKey",
                               "Specified SecurityToken mismatch with the AccessKey.")
        return None

    def _date_problem(self, value: str) -> AuthFailure | None:
        try:
            moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return AuthFailure(400, "InvalidTimeStamp.Format",
                               f"Specified time stamp or date value is not well formatted: {value!r}.")
        skew = self._wall() + self._offset - moment.timestamp()
        if abs(skew) > DATE_WINDOW:
            return AuthFailure(400, "InvalidTimeStamp.Expired",
                               f"Specified time stamp or date value is expired ({skew:+.0f} s off).")
        return None
