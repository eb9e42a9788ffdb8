"""next_step: what the worker does after a failed ImportImage, as one table (pure)."""

from __future__ import annotations

import pytest

from pipeline.ens.classify import Disposition
from pipeline.run.doubt import Step, StepKind, next_step
from pipeline.run.retry import RetryPolicy

D, K = Disposition, StepKind
POLICY = RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=8.0, max_elapsed=60.0)

# (disposition, tries so far, elapsed s, retry_after, resigned before) -> expected step
TABLE: list[tuple[Disposition, int, float, float | None, bool, Step]] = [
    # Nothing was created: back off (full jitter, rand 0.5 of base * 2^(tries-1)) and resend.
    (D.RETRY, 1, 0.0, None, False, Step(K.RETRY, 0.5)),
    (D.RETRY, 2, 0.0, None, False, Step(K.RETRY, 1.0)),
    # ... until the tries or the per-job time are spent.
    (D.RETRY, 3, 0.0, None, False, Step(K.FAIL, reason="gave up after 3 attempts")),
    (D.RETRY, 1, 59.9, None, False, Step(K.FAIL, reason="gave up after 1 attempts")),
    # Throttled: no try is used; only the server's own pause is waited here (the gate paces).
    (D.THROTTLED, 5, 0.0, None, False, Step(K.WAIT_THROTTLED, 0.0)),
    (D.THROTTLED, 1, 0.0, 2.0, False, Step(K.WAIT_THROTTLED, 2.0)),
    (D.THROTTLED, 1, 59.0, 2.0, False,
     Step(K.FAIL, reason="gave up: throttled for longer than the per-job time cap")),
    # A refused timestamp: sign afresh once; a second refusal fails.
    (D.RESIGN, 1, 0.0, None, False, Step(K.RESIGN)),
    (D.RESIGN, 2, 0.0, None, True, Step(K.FAIL)),
    # Maybe processed (timeout, reset after send, 5xx, nonce replay): never resent blindly.
    (D.AMBIGUOUS, 1, 0.0, None, False, Step(K.RECONCILE)),
    (D.AMBIGUOUS, 3, 59.9, None, True, Step(K.RECONCILE)),
    # The same request cannot succeed.
    (D.PERMANENT, 1, 0.0, None, False, Step(K.FAIL)),
]


@pytest.mark.parametrize(("disposition", "tries", "elapsed", "retry_after", "resigned", "expected"), TABLE)
def test_next_step(disposition: Disposition, tries: int, elapsed: float, retry_after: float | None,
                   resigned: bool, expected: Step) -> None:
    """Each row of the worker's decision table; an ambiguous attempt is reconciled whatever the
    tries and time spent, since resending it could create a second image."""
    assert next_step(disposition, tries, elapsed, retry_after, resigned=resigned, policy=POLICY,
                     rand=0.5) == expected
