"""What to do with each job, from its journal state (pure)."""

from __future__ import annotations

import enum

from pipeline.journal.ledger import JobLedger, JobState


class Action(enum.Enum):
    """The planner's verdict for one valid job."""

    SEND = "send"
    RECONCILE = "reconcile"
    """In doubt: look the name up before anything is sent."""
    REPLACE = "replace"
    """Failed server-side (its image ended Pack_failed, ...): delete that image, then send."""
    SKIP_DONE = "skip_done"
    SKIP_FAILED = "skip_failed"
    SKIP_FAILED_IMAGE = "skip_failed_image"
    """Failed server-side and retried, but its failed image still holds the name."""

SERVER_FAILED = frozenset({"Pack_failed", "Upload_failed", "Unavailable"})


def plan(fingerprint: str, entry: JobLedger | None, *, retry_failed: bool,
         replace_failed_images: bool = False) -> Action:
    """Decide for one job (GNU parallel's ``--resume`` / ``--resume-failed`` semantics).

    A final outcome is kept unless the job's parameters changed since; ``retry_failed``
    re-attempts the failed ones too; an attempt with no outcome is reconciled first. A job whose
    image failed server-side is imported again only once that image is deleted
    (``replace_failed_images``), so a name never stands for two images.
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
            if not (changed or retry_failed):
                return Action.SKIP_FAILED
            if entry.image_status in SERVER_FAILED and entry.image_id:
                return Action.REPLACE if replace_failed_images else Action.SKIP_FAILED_IMAGE
            return Action.SEND
        case _:
            return Action.SEND
