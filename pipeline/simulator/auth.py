"""Gateway-strict verification: V3 (SHA-256, SM3) and RPC V2 (HMAC-SHA1), replay and clock checks."""

from __future__ import annotations

import hmac
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.ens import signing, signing_v2
from pipeline.simulator.sts import StsIssuer

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
    form: Sequence[tuple[str, str]] = ()
    """A form-encoded body's pairs (V2 signs them with the query)."""


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """The gateway's refusal: HTTP status, code and message."""

    status: int
    code: str
    message: str


def _unknown_key() -> AuthFailure:
    return AuthFailure(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")


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
        sts: StsIssuer | None = None,
    ) -> None:
        self._secrets = {access_key_id: access_key_secret}
        self._sts = sts
        """Temporary credentials issued by the simulator's STS, accepted until they expire."""
        self._token = security_token
        self._offset = clock_offset
        self._wall = wall
        self._monotonic = monotonic
        self.nonces = NonceMemory(max_entries=max_nonces)

    def verify(self, request: AuthRequest) -> AuthFailure | None:
        """None when the request is authentic, fresh and not a replay (V3 header, or V2 parameters)."""
        headers = request.headers
        value = headers.get("authorization")
        if not value:
            if any(k == "Signature" for k, _ in (*request.query, *request.form)):
                return self._verify_v2(request)
            return AuthFailure(400, "MissingAuthorization", "Authorization is mandatory for this action.")
        auth = signing.parse_authorization(value)
        if auth is None:
            return _incomplete("The Authorization header is malformed.")
        algorithm = auth.algorithm
        if algorithm not in signing.ALGORITHMS:
            return _incomplete(f"Unsupported signature algorithm {algorithm!r}.")
        if not signing.algorithm_available(algorithm):
            return _incomplete(f"{algorithm} is not available here: this Python's OpenSSL has no SM3.")
        problem = self._signed_set_problem(auth.signed_headers, headers)
        if problem:
            return _incomplete(problem)
        secret = self._secret_of(auth.credential)
        if secret is None:
            return _unknown_key()
        token = headers.get("x-acs-security-token")
        failure = (self._token_problem(token, headers.get("x-acs-accesskey-id"), auth.credential)
                   or self._date_problem(headers["x-acs-date"]))
        if failure:
            return failure
        hashed = signing.payload_hash(request.body, algorithm)
        if headers["x-acs-content-sha256"] != hashed:
            return AuthFailure(400, "SignatureDoesNotMatch",
                               f"The x-acs-content-sha256 header does not match the {algorithm} hash of the "
                               "body.")
        query = signing.canonical_query(request.query)
        canonical = signing.canonical_request(
            method=request.method, path=request.path, query=query, headers=headers,
            signed_headers=auth.signed_headers, hashed_payload=hashed,
        )
        expected = signing.signature(secret, canonical, algorithm)
        if not hmac.compare_digest(expected, auth.signature):
            return AuthFailure(
                400, "SignatureDoesNotMatch",
                "Specified signature does not match our calculation. "
                f"server string to sign is:{signing.string_to_sign(canonical, algorithm)}",
            )
        return self._fresh_nonce(auth.credential, headers["x-acs-signature-nonce"])

    def _verify_v2(self, request: AuthRequest) -> AuthFailure | None:
        """The RPC signature: common parameters in the query or the form, ``Signature`` over all."""
        pairs = [*request.query, *request.form]
        given = [v for k, v in pairs if k == "Signature"]
        if len(given) != 1:
            return _incomplete("Signature is given more than once.")
        params = dict(pairs)
        for name in ("AccessKeyId", "SignatureMethod", "SignatureVersion", "SignatureNonce", "Timestamp"):
            if not params.get(name):
                return AuthFailure(400, f"Missing{name}", f"{name} is mandatory for this action.")
        if params["SignatureMethod"] != signing_v2.SIGNATURE_METHOD:
            return _incomplete(f"Unsupported SignatureMethod {params['SignatureMethod']!r}; use HMAC-SHA1.")
        if params["SignatureVersion"] != signing_v2.SIGNATURE_VERSION:
            return _incomplete(f"Unsupported SignatureVersion {params['SignatureVersion']!r}; use 1.0.")
        key_id = params["AccessKeyId"]
        secret = self._secret_of(key_id)
        if secret is None:
            return _unknown_key()
        failure = (self._token_problem(params.get("SecurityToken"), None, key_id)
                   or self._date_problem(params["Timestamp"]))
        if failure:
            return failure
        text = signing_v2.string_to_sign(request.method, [(k, v) for k, v in pairs if k != "Signature"])
        if not hmac.compare_digest(signing_v2.signature(secret, text), given[0]):
            return AuthFailure(
                400, "SignatureDoesNotMatch",
                f"Specified signature is not matched with our calculation. server string to sign is:{text}",
            )
        return self._fresh_nonce(key_id, params["SignatureNonce"])

    def _secret_of(self, key_id: str) -> str | None:
        secret = self._secrets.get(key_id)
        if secret is None and self._sts is not None:
            issued = self._sts.lookup(key_id)
            secret = issued.secret if issued is not None else None
        return secret

    def _fresh_nonce(self, credential: str, nonce: str) -> AuthFailure | None:
        if not self.nonces.add((credential, nonce), self._monotonic()):
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

    def _token_problem(self, token: str | None, key_id: str | None, credential: str) -> AuthFailure | None:
        """A configured token is required; another token, or any token to a keys-only simulator, fails.
        Credentials from the simulator's STS need their own token, and expire."""
        issued = self._sts.lookup(credential) if self._sts is not None else None
        if issued is not None:
            if token is None or not hmac.compare_digest(token, issued.token):
                return AuthFailure(400, "InvalidSecurityToken.MismatchWithAccessKey",
                                   "Specified SecurityToken mismatch with the AccessKey.")
            if self._sts is not None and self._sts.expired(issued):
                return AuthFailure(400, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired.")
            return None
        if token is None:
            if self._token is None:
                return None
            return AuthFailure(400, "MissingSecurityToken", "SecurityToken is mandatory for this action.")
        if self._token is None or not hmac.compare_digest(token, self._token):
            return AuthFailure(400, "InvalidSecurityToken.Malformed", "Specified SecurityToken is malformed.")
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
