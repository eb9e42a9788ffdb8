"""What to do with each job, from its journal state (pure)."""

from __future__ import annotations

import enum

from pipeline.replay import JobLedger, JobState


class Action(enum.Enum):
    """The planner's verdict for one valid job."""

    SEND = "send"
    RECONCILE = "reconcile"
    """In doubt: look the name up before anything is sent."""
    SKIP_DONE = "skip_done"
    SKIP_FAILED = "skip_failed"


def plan(fingerprint: str, entry: JobLedger | None, *, retry_failed: bool) -> Action:
    """Decide for one job (GNU parallel's ``--resume`` / ``--resume-failed`` semantics).

    A final outcome is kept unless the job's parameters changed since; ``retry_failed``
    re-attempts the failed ones too; an attempt with no outcome is reconciled first.
    """
    if entry is None:
        return Action.SEND
    changed = entry.fingerprint is not None and entry.fingerprint != fingerprint
    match entry.state:
        case JobState.IN_DOUBT:
            return Action.RECONCILE
        case JobState.IMPORTED:
            return Action.SEND if changed else Action.SKIP_DONE
        case JobState.FAILED:
            return Action.SEND if changed or retry_failed else Action.SKIP_FAILED
        case _:
            return Action.SEND
