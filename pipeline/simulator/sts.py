"""STS on the simulator's port: AssumeRole (signed) and AssumeRoleWithOIDC (anonymous).

Issued credentials live ``sts_ttl`` seconds; the gateway (``auth.Verifier``) accepts them until
then and answers ``InvalidSecurityToken.Expired`` after, so the refresh path runs end to end.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.simulator.responses import Reply, error_reply, json_reply

STS_VERSION = "2015-04-01"
STS_ACTIONS = frozenset({"AssumeRole", "AssumeRoleWithOIDC"})


@dataclass(frozen=True, slots=True)
class Issued:
    """One set of temporary credentials handed out."""

    secret: str
    token: str
    expires_at: float


class StsIssuer:
    """Hands out temporary credentials and remembers them for the gateway."""

    def __init__(self, ttl: float, wall: Callable[[], float] = time.time, *,
                 gateway_offset: float = 0.0) -> None:
        self.ttl = ttl
        self._wall = wall
        self._offset = gateway_offset
        """The gateway's clock skew (``--clock-offset``): it judges expiry by its own clock."""
        self.issued: dict[str, Issued] = {}
        self.count = 0

    def lookup(self, key_id: str) -> Issued | None:
        """The issued credentials of ``key_id``, expired or not."""
        return self.issued.get(key_id)

    def expired(self, issued: Issued) -> bool:
        """True once ``issued`` has run out, by the gateway's clock."""
        return self._wall() + self._offset >= issued.expires_at

    def handle(self, action: str, params: dict[str, str], request_id: str, host: str | None) -> Reply:
        """Answer one STS call (the signature of AssumeRole was checked by the caller)."""
        role_arn = params.get("RoleArn", "")
        if not role_arn.startswith("acs:ram::"):
            return error_reply(400, "InvalidParameter.RoleArn", "The parameter RoleArn is invalid.",
                               request_id=request_id, host=host)
        if action == "AssumeRoleWithOIDC" and not (params.get("OIDCToken") and params.get("OIDCProviderArn")):
            return error_reply(400, "MissingOIDCToken", "OIDCToken and OIDCProviderArn are required.",
                                   request_id=request_id, host=host)
        now = self._wall()
        key_id = "STS." + secrets.token_hex(10)
        issued = Issued("sts-secret-" + secrets.token_hex(16), "sts-token-" + secrets.token_hex(24),
                        now + self.ttl)
        self.issued[key_id] = issued
        self.count += 1
        # The wire format has second precision: round down so the answer never outlives the record.
        expiration = datetime.fromtimestamp(int(issued.expires_at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        session = params.get("RoleSessionName", "session")
        return json_reply({
            "RequestId": request_id,
            "AssumedRoleUser": {"Arn": f"{role_arn.replace(':role/', ':assumed-role/')}/{session}",
                                "AssumedRoleId": f"3{secrets.randbelow(10**17):017d}:{session}"},
            "Credentials": {"AccessKeyId": key_id, "AccessKeySecret": issued.secret,
                            "SecurityToken": issued.token, "Expiration": expiration}})
