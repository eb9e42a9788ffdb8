"""Error classification: the table of ens-api.md §5.2/§5.4 as one pure function."""

from __future__ import annotations

import pytest

from pipeline.ens.classify import (
    Disposition,
    classify,
    classify_import,
    is_clock_skew,
    is_systemic,
    rejects_credentials,
)
from pipeline.errors import ApiError, BadResponse, Delivery, TransportError

D = Disposition

# (code, HTTP status, disposition): every row of ens-api.md §5.2 plus the ENS image codes of §1.5.
API_CODES: list[tuple[str, int, Disposition]] = [
    ("Throttling", 400, D.THROTTLED),
    ("Throttling.User", 400, D.THROTTLED),
    ("Throttling.Api", 400, D.THROTTLED),
    ("Throttling.Concurrency", 400, D.THROTTLED),
    ("Rejected.Throttling", 400, D.THROTTLED),
    ("ServiceUnavailable", 503, D.RETRY),
    ("InternalError", 500, D.RETRY),
    ("UnknownError", 500, D.RETRY),
    ("SomethingNew", 502, D.RETRY),
    ("SignatureDoesNotMatch", 400, D.PERMANENT),
    ("SignatureDoesNotMatch", 403, D.PERMANENT),
    ("IncompleteSignature", 400, D.PERMANENT),
    ("InvalidAccessKeyId.NotFound", 404, D.PERMANENT),
    ("InvalidAccessKeyId.Inactive", 400, D.PERMANENT),
    ("SignatureNonceUsed", 400, D.RESIGN),
    ("InvalidTimeStamp.Expired", 400, D.RESIGN),
    ("InvalidTimeStamp.Format", 400, D.PERMANENT),
    ("MissingParameter", 400, D.PERMANENT),
    ("MissingImageName", 400, D.PERMANENT),
    ("InvalidParameter", 400, D.PERMANENT),
    ("InvalidImageName", 400, D.PERMANENT),
    ("InvalidParameter.ImageName", 400, D.PERMANENT),
    ("InvalidApi.NotFound", 404, D.PERMANENT),
    ("InvalidAction.NotFound", 404, D.PERMANENT),
    ("Forbidden.RAM", 403, D.PERMANENT),
    ("Forbidden", 403, D.PERMANENT),
    ("Forbidden.RiskControl", 403, D.PERMANENT),
    ("Forbidden.UserVerification", 403, D.PERMANENT),
    ("NoPermission", 400, D.PERMANENT),
    ("NoPermission", 403, D.PERMANENT),
    ("InvalidSecurityToken.Expired", 400, D.PERMANENT),
    ("IncorrectStatus.Image", 400, D.PERMANENT),
]


@pytest.mark.parametrize(("code", "status", "expected"), API_CODES)
def test_api_error_codes(code: str, status: int, expected: Disposition) -> None:
    """Each published code maps to its disposition."""
    assert classify(ApiError(code=code, message="m", status=status)) is expected


def test_not_sent_transport_error_is_retried() -> None:
    """A request that never left (connect refused, DNS) is safe to resend."""
    assert classify(TransportError("refused", delivery=Delivery.NOT_SENT)) is D.RETRY


def test_maybe_sent_transport_error_is_ambiguous() -> None:
    """A read timeout or a reset after sending must be reconciled before any resend."""
    assert classify(TransportError("read timeout", delivery=Delivery.MAYBE_SENT)) is D.AMBIGUOUS


@pytest.mark.parametrize("status", [200, 500, 502, 503, 504])
def test_unreadable_answer_that_may_have_been_processed_is_ambiguous(status: int) -> None:
    """A non-JSON 5xx (a gateway page) or 200 may hide a created image: reconcile."""
    error = BadResponse(status=status, body_start="<html>", delivery=Delivery.MAYBE_SENT)
    assert classify(error) is D.AMBIGUOUS


@pytest.mark.parametrize("status", [400, 403, 404, 413])
def test_unreadable_4xx_is_permanent(status: int) -> None:
    """A non-JSON 4xx (a proxy refusing us) does not become right by resending."""
    error = BadResponse(status=status, body_start="<html>", delivery=Delivery.ANSWERED)
    assert classify(error) is D.PERMANENT


@pytest.mark.parametrize("code", [
    "NoPermission", "Forbidden", "Forbidden.RAM", "InvalidAccessKeyId.NotFound",
    "InvalidAccessKeyId.Inactive", "SignatureDoesNotMatch", "IncompleteSignature",
    "InvalidTimeStamp.Expired", "InvalidSecurityToken.Expired", "InvalidSecurityToken.Malformed",
])
def test_systemic_codes(code: str) -> None:
    """Credential, permission and clock codes fail every request alike: systemic."""
    assert is_systemic(code)


@pytest.mark.parametrize("code", [
    "InvalidParameter", "InvalidParameter.ImageName", "MissingParameter", "Throttling.User",
    "InternalError", "SignatureNonceUsed", "IncorrectStatus.Image", "Transport.MaybeSent", "HTTP502",
])
def test_job_specific_codes_are_not_systemic(code: str) -> None:
    """Codes about one request's content or transient state do not trip the breaker."""
    assert not is_systemic(code)


def _api(code: str, status: int = 400) -> ApiError:
    return ApiError(code=code, message="m", status=status, request_id="R")


# (error, rejects our credentials, refuses our clock)
PREDICATES: list[tuple[ApiError | TransportError | BadResponse, bool, bool]] = [
    (_api("SignatureDoesNotMatch"), True, False),
    (_api("IncompleteSignature"), True, False),
    (_api("InvalidAccessKeyId.NotFound", 404), True, False),
    (_api("InvalidAccessKeyId.Inactive"), True, False),
    (_api("InvalidSecurityToken.Expired"), True, False),
    (_api("InvalidSecurityToken.Malformed"), True, False),
    (_api("InvalidTimeStamp.Expired"), False, True),
    (_api("InvalidTimeStamp.Format"), False, True),
    (_api("NoPermission", 403), False, False),
    (_api("Forbidden.RAM", 403), False, False),
    (_api("Throttling.User"), False, False),
    (_api("InvalidParameter"), False, False),
    (TransportError("reset", delivery=Delivery.MAYBE_SENT), False, False),
    (BadResponse(status=502, body_start="<html>", delivery=Delivery.ANSWERED), False, False),
]


@pytest.mark.parametrize(("error", "credentials", "clock"), PREDICATES, ids=lambda v: getattr(v, "code", v))
def test_named_predicates(error: ApiError, credentials: bool, clock: bool) -> None:
    """rejects_credentials: ENS refused who we are; is_clock_skew: it refused our time. A refused
    permission (NoPermission, Forbidden*) is neither: the key works, the RAM policy lacks a grant."""
    assert rejects_credentials(error) is credentials
    assert is_clock_skew(error) is clock


def test_every_ens_error_carries_code_status_and_request_id() -> None:
    """Callers read code, status and request_id on any EnsError without getattr."""
    api = _api("InternalError", 500)
    assert (api.code, api.status, api.request_id) == ("InternalError", 500, "R")
    bad = BadResponse(status=502, body_start="<html>", delivery=Delivery.ANSWERED)
    assert (bad.code, bad.status, bad.request_id) == ("HTTP502", 502, None)
    lost = TransportError("reset", delivery=Delivery.MAYBE_SENT)
    assert (lost.code, lost.status, lost.request_id) == ("Transport.MaybeSent", None, None)


# (error, disposition of ImportImage): a creating call treats every answer that may follow a
# created image as ambiguous (design.md §4), unlike a read-only Describe page.
IMPORT_ERRORS: list[tuple[ApiError | TransportError | BadResponse, Disposition]] = [
    (_api("ServiceUnavailable", 503), D.AMBIGUOUS),
    (_api("InternalError", 500), D.AMBIGUOUS),
    (_api("UnknownError", 500), D.AMBIGUOUS),
    (_api("SomethingNew", 502), D.AMBIGUOUS),
    (_api("SignatureNonceUsed", 400), D.AMBIGUOUS),
    (BadResponse(status=503, body_start="<html>", delivery=Delivery.MAYBE_SENT), D.AMBIGUOUS),
    (BadResponse(status=502, body_start="<html>", delivery=Delivery.ANSWERED), D.AMBIGUOUS),
    (TransportError("read timeout", delivery=Delivery.MAYBE_SENT), D.AMBIGUOUS),
    (TransportError("refused", delivery=Delivery.NOT_SENT), D.RETRY),
    (_api("Throttling.User", 400), D.THROTTLED),
    (_api("InvalidTimeStamp.Expired", 400), D.RESIGN),
    (_api("InvalidParameter", 400), D.PERMANENT),
    (_api("NoPermission", 403), D.PERMANENT),
    (BadResponse(status=404, body_start="<html>", delivery=Delivery.ANSWERED), D.PERMANENT),
]


@pytest.mark.parametrize(("error", "expected"), IMPORT_ERRORS, ids=lambda v: getattr(v, "code", v))
def test_import_errors(error: ApiError, expected: Disposition) -> None:
    """ImportImage: any 5xx (JSON body or not) and SignatureNonceUsed may follow a created image
    (an earlier copy of a never-reused nonce reached ENS): reconcile, never resend blindly."""
    assert classify_import(error) is expected


def test_read_only_calls_keep_retrying_5xx() -> None:
    """A Describe page may be resent on a 503: classify (not classify_import) says RETRY."""
    assert classify(_api("ServiceUnavailable", 503)) is D.RETRY
    assert classify(_api("SignatureNonceUsed", 400)) is D.RESIGN
