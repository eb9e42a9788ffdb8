"""Hold the account's images against the journal, job by job (pure): ok, missing, duplicates,
failed server-side, images unknown to the journal."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.journal.ledger import JobState, Ledger

SERVER_FAILED = frozenset({"Pack_failed", "Upload_failed", "Unavailable"})
CREATING = "Creating"


class ListedImage(Protocol):
    """An image as the account listing shows it."""

    @property
    def image_id(self) -> str: ...
    @property
    def image_name(self) -> str: ...
    @property
    def status(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Seen:
    """One image of the account that carries a job's name."""

    image_id: str
    status: str | None

    def to_json(self) -> dict[str, Any]:
        """For ``--json``."""
        return {"image_id": self.image_id, "status": self.status}


class Verdict(enum.Enum):
    """What the account says about one job of the journal."""

    OK = "ok"
    """Recorded imported, and exactly that one image carries the name."""
    MISSING = "missing"
    """Recorded imported, but its image is not in the account (deleted by someone)."""
    DUPLICATES = "duplicates"
    """Its recorded image is there, and more images carry the name: those are orphans."""
    FAILED = "failed"
    """Its recorded image ended failed server-side (Pack_failed, Upload_failed, Unavailable)."""
    UNKNOWN = "unknown"
    """Images carry the name, but the journal records none for this job."""
    NOT_IMPORTED = "not_imported"
    """Not imported according to the journal, and no image carries the name (nothing wrong)."""

    @property
    def wrong(self) -> bool:
        """True when this verdict makes the audit fail (exit 1)."""
        return self not in (Verdict.OK, Verdict.NOT_IMPORTED)


@dataclass(frozen=True, slots=True)
class JobAudit:
    """One job's verdict and the images behind it."""

    key: str
    verdict: Verdict
    state: str
    """The job's state in the journal."""
    journal_image_id: str | None
    """The ImageId the journal holds for the job, if any."""
    journal_image: Seen | None
    """That image as the account lists it (None when not there)."""
    others: tuple[Seen, ...] = ()
    """Images carrying the name that the journal does not hold: orphans, or unknown images."""

    @property
    def deletable(self) -> tuple[Seen, ...]:
        """Orphans ``--delete-duplicates`` may delete: the journaled image exists and is not
        failed, and the orphan is no longer ``Creating``."""
        if self.verdict is not Verdict.DUPLICATES:
            return ()
        return tuple(o for o in self.others if o.status != CREATING)

    def to_json(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "job": self.key, "verdict": self.verdict.value, "state": self.state,
            "journal_image_id": self.journal_image_id,
            "journal_image": self.journal_image.to_json() if self.journal_image else None,
            "others": [o.to_json() for o in self.others],
        }

    def line(self) -> str:
        """One line for people."""
        held = self.journal_image_id or "-"
        others = ", ".join(f"{o.image_id} ({o.status or '?'})" for o in self.others)
        match self.verdict:
            case Verdict.DUPLICATES:
                status = self.journal_image.status if self.journal_image else "?"
                return (f"duplicates {self.key}: the journal holds {held} ({status}); "
                        f"orphans: {others}")
            case Verdict.MISSING:
                tail = f"; other images with the name: {others}" if others else ""
                return f"missing {self.key}: recorded imported as {held}, not in the account{tail}"
            case Verdict.FAILED:
                status = self.journal_image.status if self.journal_image else "?"
                tail = f"; other images with the name: {others}" if others else ""
                return f"failed {self.key}: image {held} ended {status} on the server{tail}"
            case Verdict.UNKNOWN:
                return (f"unknown {self.key}: the journal records no image for it ({self.state}), "
                        f"but the account has {others}")
            case _:
                return f"{self.verdict.value} {self.key}: {held}"


@dataclass(slots=True)
class AuditReport:
    """Every job's verdict, and the counts."""

    jobs: list[JobAudit] = field(default_factory=list)
    images_listed: int = 0

    @property
    def counts(self) -> dict[str, int]:
        """Jobs by verdict (every verdict present, 0 when none)."""
        counts = {v.value: 0 for v in Verdict}
        for job in self.jobs:
            counts[job.verdict.value] += 1
        return counts

    @property
    def problems(self) -> list[JobAudit]:
        """The jobs whose verdict is wrong, in journal order."""
        return [job for job in self.jobs if job.verdict.wrong]

    @property
    def clean(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems

    def deletable(self) -> list[tuple[str, Seen]]:
        """(job, orphan) pairs ``--delete-duplicates`` may delete."""
        return [(job.key, orphan) for job in self.jobs for orphan in job.deletable]

    def waiting(self) -> list[tuple[str, Seen]]:
        """(job, orphan) pairs still ``Creating``: not deleted yet (run the audit again later)."""
        return [(job.key, o) for job in self.jobs if job.verdict is Verdict.DUPLICATES
                for o in job.others if o.status == CREATING]

    def summary_line(self) -> str:
        """The first line for people."""
        c = self.counts
        return (f"{len(self.jobs)} jobs, {self.images_listed} images listed: ok {c['ok']}, "
                f"missing {c['missing']}, duplicates {c['duplicates']}, failed server-side "
                f"{c['failed']}, unknown to the journal {c['unknown']}, not imported "
                f"{c['not_imported']}")


def audit(ledger: Ledger, images: Iterable[ListedImage]) -> AuditReport:
    """Judge every job of ``ledger`` against the account's ``images`` (listed once)."""
    by_name: dict[str, list[Seen]] = {}
    listed = 0
    for image in images:
        listed += 1
        by_name.setdefault(image.image_name, []).append(Seen(image.image_id, image.status))
    report = AuditReport(images_listed=listed)
    for key, job in ledger.jobs.items():
        if job.state is JobState.INVALID:
            continue
        report.jobs.append(judge(key, job.state, job.image_id, job.image_status, by_name.get(key, [])))
    return report


def judge(key: str, state: JobState, image_id: str | None, image_status: str | None,
          named: list[Seen]) -> JobAudit:
    """One job's verdict from its journal state and the images carrying its name (pure)."""
    mine = next((s for s in named if s.image_id == image_id), None) if image_id else None
    others = tuple(s for s in named if s is not mine)
    held = image_id if state in (JobState.IMPORTED, JobState.FAILED) else None
    if state is JobState.IMPORTED and image_id:
        if mine is None:
            verdict = Verdict.MISSING
        elif mine.status in SERVER_FAILED:
            verdict = Verdict.FAILED
        elif others:
            verdict = Verdict.DUPLICATES
        else:
            verdict = Verdict.OK
    elif state is JobState.FAILED and image_id and image_status in SERVER_FAILED and mine is not None:
        verdict = Verdict.FAILED
    elif others or mine is not None:
        verdict = Verdict.UNKNOWN
        others = tuple(named)
        held = None
    else:
        verdict = Verdict.NOT_IMPORTED
    return JobAudit(key, verdict, state.value, held, mine if held else None, others)


def without(images: Iterable[ListedImage], gone: Mapping[str, object]) -> list[ListedImage]:
    """``images`` less those whose ImageId is a key of ``gone`` (deleted meanwhile)."""
    return [image for image in images if image.image_id not in gone]
