"""Fold journal records into the latest state per job key (pure; reading the file is journal.reader's)."""

from __future__ import annotations

import enum
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.journal import records as r


class JobState(enum.Enum):
    """Where a job stands according to the journal."""

    PENDING = "pending"
    """Known, not done, and provably not created: safe to send."""
    IN_DOUBT = "in_doubt"
    """An attempt with no outcome (crash, timeout): look the name up before sending again."""
    IMPORTED = "imported"
    FAILED = "failed"
    INVALID = "invalid"


FINAL_STATES = frozenset({JobState.IMPORTED, JobState.FAILED})


@dataclass(slots=True)
class JobLedger:
    """Everything the journal says about one job key (mutable only while folding)."""

    state: JobState
    fingerprint: str | None = None
    attempts: int = 0
    image_id: str | None = None
    known_image_ids: tuple[str, ...] = ()
    """Every ImageId ever recorded for this key; a lookup never adopts one of these for a new
    fingerprint."""
    code: str | None = None
    message: str | None = None
    http_status: int | None = None
    request_ids: tuple[str, ...] = ()
    source: str | None = None
    line: int | None = None
    params: Mapping[str, str] | None = None
    first_ts: str | None = None
    last_ts: str | None = None
    image_status: str | None = None
    import_seconds: float | None = None
    via: str | None = None
    run: int = 0
    """``Ledger.runs`` when this key's last record was folded: the run that last wrote it."""
    deleting: str | None = None
    """An ImageId whose DeleteImage was sent (``job.delete``) with no outcome recorded yet."""
    deleted_ids: tuple[str, ...] = ()
    """Every ImageId recorded deleted (``job.deleted``) for this key."""
    doubt_ts: str | None = None
    """While in doubt: the timestamp of its last attempt or ambiguous error, where the reconcile
    horizon of an inherited doubt is measured from (cleared by an outcome)."""
    changed_fp: str | None = None
    """The fingerprint of a changed row seen for this imported job (``job.changed``), not sent."""
    duplicates: tuple[str, ...] = ()
    """Second images of this job found by a run's own check (``job.duplicate``), not deleted since."""


@dataclass(frozen=True, slots=True)
class RunInfo:
    """The last run a journal records: when it started and ended, why it stopped, its exit code."""

    index: int
    """1-based: the how-manieth ``run.start`` of the journal."""
    started: str | None
    ended: str | None = None
    """None when the run has no ``run.end``: still running, or killed."""
    stop: str | None = None
    detail: str | None = None
    exit_code: int | None = None
    stats: Mapping[str, Any] | None = None


@dataclass(slots=True)
class Ledger:
    """The folded journal: per-key state, plus run-level facts."""

    jobs: dict[str, JobLedger] = field(default_factory=dict)
    learned_rate: float | None = None
    target: str | None = None
    """Where the last run sent its imports (an endpoint URL, or ``simulator``)."""
    runs: int = 0
    last_run: RunInfo | None = None
    """The last ``run.start`` and its ``run.end``, if any."""
    records: int = 0
    detail: bool = True
    """Keep every RequestId, the first and last times and the source line per job (status,
    report, waiting). A run needs none of them; without them a 1,000,000-record journal folds in
    about half the memory."""

    def apply(self, rec: Mapping[str, Any], *, keep_params: bool = False) -> None:
        """Fold one decoded record into the state."""
        self.records += 1
        event = rec.get("event")
        if event == r.RUN_START:
            self.runs += 1
            self.target = rec.get("target", self.target)
            self.last_run = RunInfo(self.runs, rec.get("ts"))
            return
        if event == r.RUN_END:
            stats = rec.get("stats")
            self.last_run = RunInfo(self.runs, self.last_run.started if self.last_run else None,
                                    rec.get("ts"), rec.get("stop"), rec.get("detail"), rec.get("exit_code"),
                                    stats if isinstance(stats, Mapping) else None)
            return
        if event == r.RATE_LEARNED:
            self.learned_rate = float(rec["rate"])
            return
        key = rec.get("key")
        if not isinstance(key, str) or event not in r.EVENTS:
            return
        job = self.jobs.get(key)
        if job is None:
            job = self.jobs[key] = JobLedger(state=JobState.PENDING,
                                             first_ts=rec.get("ts") if self.detail else None)
        if self.detail:
            job.last_ts = rec.get("ts")
        job.run = self.runs
        _apply_job(job, event, rec, keep_params, self.detail)


def _apply_job(job: JobLedger, event: str, rec: Mapping[str, Any], keep_params: bool,
               detail: bool) -> None:
    if "fp" in rec:
        job.fingerprint = rec["fp"]
    if detail and "source" in rec:
        # Few distinct values, one string object each rather than one per job.
        job.source, job.line = sys.intern(rec["source"]), rec.get("line")
    if keep_params and "params" in rec:
        job.params = rec["params"]
    request_id = rec.get("request_id")
    if request_id and detail:
        job.request_ids = (*job.request_ids, request_id)
    if event == r.JOB_ATTEMPT:
        job.state = JobState.IN_DOUBT
        job.doubt_ts = rec.get("ts")
        job.attempts = max(job.attempts, int(rec.get("attempt", job.attempts + 1)))
    elif event == r.JOB_ERROR:
        ambiguous = bool(rec.get("ambiguous"))
        job.state = JobState.IN_DOUBT if ambiguous else JobState.PENDING
        job.doubt_ts = rec.get("ts") if ambiguous else None
        _set_error(job, rec)
    elif event == r.JOB_CHANGED:
        job.changed_fp = rec.get("new_fp")
    elif event == r.JOB_DUPLICATE:
        extra = [i for i in rec.get("duplicates", ()) if i not in job.duplicates]
        job.duplicates = (*job.duplicates, *extra)
        for image_id in extra:
            if image_id not in job.known_image_ids:
                job.known_image_ids = (*job.known_image_ids, image_id)
    elif event in (r.JOB_IMPORTED, r.JOB_SKIPPED):
        job.state = JobState.IMPORTED
        job.doubt_ts = job.changed_fp = None
        _adopt(job, rec["image_id"])
        job.via = sys.intern(rec.get("via") or ("existing" if event == r.JOB_SKIPPED else "import"))
        job.code = job.message = None
        job.http_status = None
        job.image_status = None
    elif event == r.JOB_RECONCILED:
        job.doubt_ts = None
        if rec.get("image_id"):
            job.state = JobState.IMPORTED
            _adopt(job, rec["image_id"])
            job.via = "reconcile"
        else:
            job.state = JobState.PENDING
    elif event == r.JOB_FAILED:
        job.state = JobState.FAILED
        job.doubt_ts = None
        _set_error(job, rec)
    elif event == r.JOB_INVALID:
        job.state = JobState.INVALID
        job.fingerprint = rec.get("fp")
        job.code = "InvalidRow"
        job.message = "; ".join(f"{p['field']}: {p['message']}" for p in rec.get("problems", ()))
    elif event == r.JOB_DELETE:
        job.deleting = rec.get("image_id")
    elif event in (r.JOB_DELETED, r.JOB_DELETE_FAILED):
        _delete_outcome(job, event, rec)
    elif event == r.JOB_STATUS:
        job.image_status = rec.get("status")
        if rec.get("seconds") is not None:
            job.import_seconds = float(rec["seconds"])
        if rec.get("failed"):
            job.state = JobState.FAILED
            job.code = f"Image.{rec.get('status')}"
            job.message = f"image {job.image_id} ended {rec.get('status')} on the server"


def _delete_outcome(job: JobLedger, event: str, rec: Mapping[str, Any]) -> None:
    image_id = rec.get("image_id")
    if job.deleting == image_id:
        job.deleting = None
    if event != r.JOB_DELETED or not isinstance(image_id, str):
        return
    if image_id not in job.deleted_ids:
        job.deleted_ids = (*job.deleted_ids, image_id)
    if image_id in job.duplicates:
        job.duplicates = tuple(i for i in job.duplicates if i != image_id)
    if job.image_id == image_id:
        # The job's own image is gone: nothing stands for it now, so it may be sent again (a
        # failed image replaced, or an imported one re-imported on purpose). An orphan's
        # deletion leaves the job as it was.
        job.image_id = None
        job.image_status = "Deleted"
        if job.state is JobState.IMPORTED:
            job.state = JobState.PENDING


def _adopt(job: JobLedger, image_id: str) -> None:
    job.image_id = image_id
    if image_id not in job.known_image_ids:
        job.known_image_ids = (*job.known_image_ids, image_id)


def _set_error(job: JobLedger, rec: Mapping[str, Any]) -> None:
    job.code = rec.get("code")
    job.message = rec.get("message")
    job.http_status = rec.get("status")


def fold(decoded: Iterable[Mapping[str, Any]], *, keep_params: bool = False,
         detail: bool = True) -> Ledger:
    """Fold a stream of decoded records into a ``Ledger``."""
    ledger = Ledger(detail=detail)
    for rec in decoded:
        ledger.apply(rec, keep_params=keep_params)
    return ledger
