"""What to do with each job, from its journal state (pure)."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from pipeline.joblist.job import Job
from pipeline.joblist.validate import InvalidRow, Validated
from pipeline.journal.ledger import JobLedger, JobState, Ledger
from pipeline.oss.source import is_source_failure


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
    SKIP_EXISTING = "skip_existing"
    """``--skip-existing``: the account already has an image of this name (to send or reconcile)."""
    SKIP_CHANGED = "skip_changed"
    """Imported, and its row changed since: imported is final, so it is reported, not sent."""
    REIMPORT = "reimport"
    """``--reimport-changed``: delete the imported image, then import the changed row."""

SERVER_FAILED = frozenset({"Pack_failed", "Upload_failed", "Unavailable"})


def plan(fingerprint: str, entry: JobLedger | None, *, retry_failed: bool,
         replace_failed_images: bool = False, reimport_changed: bool = False) -> Action:
    """Decide for one job (GNU parallel's ``--resume`` / ``--resume-failed`` semantics).

    An imported job is final: a changed row (or a changed ``[defaults]`` line) is reported, and
    sent only with ``reimport_changed``, after its image is deleted. A failed job is sent again
    when its row changed, or with ``retry_failed``; an attempt with no outcome is reconciled
    first. A job whose
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
            if not changed:
                return Action.SKIP_DONE
            return Action.REIMPORT if reimport_changed and entry.image_id else Action.SKIP_CHANGED
        case JobState.FAILED:
            if is_source_failure(entry.code):
                # Never sent (its object was missing, empty, not qcow2): check it again every run.
                return Action.SEND
            if not (changed or retry_failed):
                return Action.SKIP_FAILED
            if entry.image_status in SERVER_FAILED and entry.image_id:
                return Action.REPLACE if replace_failed_images else Action.SKIP_FAILED_IMAGE
            return Action.SEND
        case _:
            return Action.SEND


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """What the run was asked to include (the flags that change a plan)."""

    retry_failed: bool = False
    replace_failed_images: bool = False
    reimport_changed: bool = False
    existing: Mapping[str, str] | None = None
    """``--skip-existing``: ImageName -> ImageId of the account's images, listed once (None: not asked)."""


@dataclass(frozen=True, slots=True)
class Planned:
    """One valid job and what to do with it."""

    job: Job
    action: Action
    entry: JobLedger | None
    """The job's journal state, if the journal knows it."""
    existing_id: str | None = None
    """The account's image of that name (``SKIP_EXISTING``)."""


def plan_rows(rows: Iterable[Validated], ledger: Ledger,
              options: PlanOptions) -> Iterator[Planned | InvalidRow]:
    """The plan of a whole list, row by row (lazily): the one planning loop, shared by the run's
    producer and ``--dry-run`` so the two cannot drift. Invalid rows pass through as they are."""
    existing = options.existing
    for item in rows:
        if isinstance(item, InvalidRow):
            yield item
            continue
        entry = ledger.jobs.get(item.name)
        action = plan(item.fingerprint, entry, retry_failed=options.retry_failed,
                      replace_failed_images=options.replace_failed_images,
                      reimport_changed=options.reimport_changed)
        found = existing.get(item.name) if existing is not None else None
        if found and action in (Action.SEND, Action.RECONCILE):
            yield Planned(item, Action.SKIP_EXISTING, entry, found)
        else:
            yield Planned(item, action, entry)
