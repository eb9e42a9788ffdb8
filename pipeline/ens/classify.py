"""What a failed ENS call means for the next step: one pure table (ens-api.md §5.4)."""

from __future__ import annotations

import enum
import json

from pipeline.errors import ApiError, Delivery, EnsError

RETRY_CODES: frozenset[str] = frozenset({"ServiceUnavailable", "InternalError", "UnknownError"})
RESIGN_CODES: frozenset[str] = frozenset({"SignatureNonceUsed", "InvalidTimeStamp.Expired"})
SYSTEMIC_CODES: frozenset[str] = frozenset(
    {"NoPermission", "SignatureDoesNotMatch", "IncompleteSignature", "InvalidTimeStamp.Expired"}
)
SYSTEMIC_PREFIXES: tuple[str, ...] = ("Forbidden", "InvalidAccessKeyId", "InvalidSecurityToken")


class Disposition(enum.Enum):
    """What to do after a failed call."""

    THROTTLED = "throttled"
    """Quota exceeded: slow the whole run down, then retry (honour ``retry_after``)."""
    RETRY = "retry"
    """Transient and provably harmless to resend: back off and retry."""
    RESIGN = "resign"
    """Rejected for its date or nonce: re-sign (fresh date and nonce) and retry once."""
    AMBIGUOUS = "ambiguous"
    """The request may have been processed: reconcile (look the image up) before any resend."""
    PERMANENT = "permanent"
    """Resending the same request cannot succeed: record the failure."""


def classify(error: EnsError) -> Disposition:
    """Map an error from the client onto what to do next."""
    if isinstance(error, ApiError):
        code = error.code
        if code.startswith("Throttling") or code == "Rejected.Throttling":
            return Disposition.THROTTLED
        if code in RESIGN_CODES:
            return Disposition.RESIGN
        if code in RETRY_CODES or error.status >= 500:
            return Disposition.RETRY
        return Disposition.PERMANENT
    if error.delivery is Delivery.MAYBE_SENT:
        return Disposition.AMBIGUOUS
    if error.delivery is Delivery.NOT_SENT:
        return Disposition.RETRY
    # An answer we cannot read that is not 5xx (a proxy's 4xx page): resending will not help.
    return Disposition.PERMANENT


AMBIGUOUS_IMPORT_CODES: frozenset[str] = frozenset({"SignatureNonceUsed"})
"""Answers to a creating call that prove an earlier copy of the request reached ENS: the tool
never reuses a nonce, so "nonce used" means this very request was received before."""


def classify_import(error: EnsError) -> Disposition:
    """Like ``classify``, for a call that creates something (ImportImage): any 5xx answer (JSON
    body or not: ``ServiceUnavailable`` may come after the backend created the image) and
    ``SignatureNonceUsed`` are ambiguous, never "safe to resend" (design.md §4)."""
    status = error.status
    if isinstance(error, ApiError) and error.code in AMBIGUOUS_IMPORT_CODES:
        return Disposition.AMBIGUOUS
    if status is not None and status >= 500 and error.delivery is not Delivery.NOT_SENT:
        return Disposition.AMBIGUOUS
    return classify(error)


def rejects_credentials(error: EnsError) -> bool:
    """True when ENS refused who we are (key, secret, token, signature), not what we asked for:
    every later request would be refused alike. Permission and clock errors are not this."""
    code = error.code
    return (code in {"SignatureDoesNotMatch", "IncompleteSignature"}
            or code.startswith(("InvalidAccessKeyId", "InvalidSecurityToken")))


def is_clock_skew(error: EnsError) -> bool:
    """True when ENS refused the request's time: the local clock is off."""
    return error.code.startswith("InvalidTimeStamp")


def is_systemic(code: str) -> bool:
    """True for codes that fail every request alike (credentials, permissions, clock): a run
    seeing them should stop early instead of failing each job in turn."""
    return code in SYSTEMIC_CODES or code.startswith(SYSTEMIC_PREFIXES)


STALE_CODE = "InvalidSecurityToken.Expired"


def stale_credentials(body: bytes, *, renewable: bool) -> str | None:
    """The Code of an error body that calls the STS credentials stale, else None.

    ``InvalidSecurityToken.Expired`` always; every other ``InvalidSecurityToken.*`` too when the
    source can renew them (a renewed token is worth one more try; a static one is just wrong)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    code = data.get("Code") if isinstance(data, dict) else None
    if not isinstance(code, str):
        return None
    if code == STALE_CODE or (renewable and code.startswith("InvalidSecurityToken")):
        return code
    return None
