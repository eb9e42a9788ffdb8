"""The planner: what to do with each job given its journal state (``--resume``/``--resume-failed``)."""

from __future__ import annotations

import pytest

from pipeline.journal.ledger import JobLedger, JobState
from pipeline.run.plan import Action, plan

FP = "f" * 32
OTHER = "0" * 32

S, A = JobState, Action

# (state, fingerprint changed, retry_failed, expected)
TABLE: list[tuple[JobState, bool, bool, Action]] = [
    (S.PENDING, False, False, A.SEND),
    (S.PENDING, False, True, A.SEND),
    (S.PENDING, True, False, A.SEND),
    (S.PENDING, True, True, A.SEND),
    (S.IN_DOUBT, False, False, A.RECONCILE),
    (S.IN_DOUBT, False, True, A.RECONCILE),
    (S.IN_DOUBT, True, False, A.RECONCILE),
    (S.IN_DOUBT, True, True, A.RECONCILE),
    (S.IMPORTED, False, False, A.SKIP_DONE),
    (S.IMPORTED, False, True, A.SKIP_DONE),
    (S.IMPORTED, True, False, A.SEND),
    (S.IMPORTED, True, True, A.SEND),
    (S.FAILED, False, False, A.SKIP_FAILED),
    (S.FAILED, False, True, A.SEND),
    (S.FAILED, True, False, A.SEND),
    (S.FAILED, True, True, A.SEND),
    (S.INVALID, False, False, A.SEND),
    (S.INVALID, False, True, A.SEND),
    (S.INVALID, True, False, A.SEND),
    (S.INVALID, True, True, A.SEND),
]


@pytest.mark.parametrize(("state", "changed", "retry_failed", "expected"), TABLE)
def test_plan_table(state: JobState, changed: bool, retry_failed: bool, expected: Action) -> None:
    """Final outcomes are kept unless the parameters changed (or --retry-failed for failures);
    an attempt with no outcome is always reconciled first; anything else is sent."""
    entry = JobLedger(state=state, fingerprint=OTHER if changed else FP)
    assert plan(FP, entry, retry_failed=retry_failed) is expected


def test_table_covers_every_combination() -> None:
    """The table above holds every state x changed x retry_failed combination exactly once."""
    combos = {(s, c, r) for s, c, r, _ in TABLE}
    assert len(TABLE) == len(combos) == len(JobState) * 2 * 2


@pytest.mark.parametrize("retry_failed", [False, True])
def test_unknown_job_is_sent(retry_failed: bool) -> None:
    """A job the journal has never seen is sent."""
    assert plan(FP, None, retry_failed=retry_failed) is Action.SEND


@pytest.mark.parametrize(("state", "expected"), [(S.IMPORTED, A.SKIP_DONE), (S.FAILED, A.SKIP_FAILED)])
def test_missing_fingerprint_is_not_a_change(state: JobState, expected: Action) -> None:
    """A ledger entry without a fingerprint does not count as changed."""
    assert plan(FP, JobLedger(state=state), retry_failed=False) is expected
