"""Summarise a journal (pure): counts by state, failures by error code, the last run, rates."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ExitCode
from pipeline.journal.ledger import JobLedger, JobState, Ledger, RunInfo

SCHEMA = 1
"""Version of the ``status --json`` document; bumped only when a key changes meaning or goes."""
_Example = tuple[str, str | None, str | None, str | None, int | None]
"""A failure example: job, message, request_id, source, line."""


@dataclass(frozen=True, slots=True)
class Counts:
    """Jobs by state; ``imported`` is split by how the image came to exist."""

    imported: int = 0
    """Created by our ImportImage request."""
    adopted: int = 0
    """Found by name after an ambiguous attempt (reconcile) and adopted."""
    existing: int = 0
    """Already present in ENS (``--skip-existing``)."""
    failed: int = 0
    in_doubt: int = 0
    pending: int = 0
    invalid: int = 0
    """Invalid rows journaled by the last run only (earlier runs' rows may have been fixed)."""

    @property
    def done(self) -> int:
        """Jobs whose image exists."""
        return self.imported + self.adopted + self.existing

    @property
    def total(self) -> int:
        """Every job and invalid row counted."""
        return self.done + self.failed + self.in_doubt + self.pending + self.invalid


@dataclass(frozen=True, slots=True)
class FailureGroup:
    """Failed jobs sharing an error code, with one example to quote in a support ticket."""

    code: str
    count: int
    job: str
    message: str | None
    request_id: str | None
    source: str | None
    line: int | None


@dataclass(frozen=True, slots=True)
class ImageStatusGroup:
    """Jobs whose last seen server-side image status is ``status``, and how long imports took."""

    status: str
    count: int
    mean_seconds: float | None
    max_seconds: float | None


@dataclass(frozen=True, slots=True)
class Flagged:
    """One job the journal flags: a duplicate image found, or a row changed since imported."""

    job: str
    image_id: str | None
    """The image the journal holds for the job."""
    others: tuple[str, ...] = ()
    """Duplicates: the orphan ImageIds."""


@dataclass(frozen=True, slots=True)
class Status:
    """Everything ``ens-migrate status`` shows."""

    journal: str
    records: int
    runs: int
    counts: Counts
    failures: tuple[FailureGroup, ...]
    last_run: RunInfo | None
    learned_rate: float | None
    image_statuses: tuple[ImageStatusGroup, ...]
    duplicates: tuple[Flagged, ...] = ()
    """Jobs with a second image found by a run's own check (``job.duplicate``)."""
    changed: tuple[Flagged, ...] = ()
    """Imported jobs whose row changed since (``job.changed``): not sent again."""

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document (keys documented in the command's help)."""
        c = self.counts
        last = self.last_run
        return {
            "schema": SCHEMA,
            "journal": self.journal,
            "records": self.records,
            "runs": self.runs,
            "counts": {"imported": c.imported, "adopted": c.adopted, "existing": c.existing,
                       "done": c.done, "failed": c.failed, "in_doubt": c.in_doubt,
                       "pending": c.pending, "invalid": c.invalid, "total": c.total},
            "failures": [{"code": g.code, "count": g.count, "example": {
                "job": g.job, "message": g.message, "request_id": g.request_id,
                "source": g.source, "line": g.line}} for g in self.failures],
            "last_run": None if last is None else {
                "index": last.index, "started": last.started, "ended": last.ended,
                "stop": last.stop, "detail": last.detail, "exit_code": last.exit_code,
                "exit_meaning": None if last.exit_code is None else ExitCode.meaning_of(last.exit_code),
                "stats": dict(last.stats) if last.stats is not None else None},
            "learned_rate": self.learned_rate,
            "image_statuses": [{"status": g.status, "count": g.count, "mean_seconds": g.mean_seconds,
                                "max_seconds": g.max_seconds} for g in self.image_statuses],
            "duplicates": [{"job": d.job, "image_id": d.image_id, "orphans": list(d.others)}
                           for d in self.duplicates],
            "changed_since_imported": [{"job": d.job, "image_id": d.image_id} for d in self.changed],
        }


def is_stale_invalid(job: JobLedger, ledger: Ledger) -> bool:
    """An invalid row an earlier run journaled and the last run did not: fixed or gone since."""
    return job.state is JobState.INVALID and job.run != ledger.runs


def current_jobs(ledger: Ledger) -> Iterator[tuple[str, JobLedger]]:
    """The ledger's jobs in journal order, without stale invalid rows."""
    for key, job in ledger.jobs.items():
        if not is_stale_invalid(job, ledger):
            yield key, job


def summarize(ledger: Ledger, *, journal: str) -> Status:
    """Compute the status of a folded journal (``read_ledger(path, detail=True)``)."""
    tally = {s: 0 for s in ("import", "reconcile", "existing", *(s.value for s in JobState))}
    failure_counts: dict[str, int] = {}
    examples: dict[str, _Example] = {}
    images: dict[str, list[float]] = {}
    image_counts: dict[str, int] = {}
    duplicates: list[Flagged] = []
    changed: list[Flagged] = []
    for key, job in current_jobs(ledger):
        if job.duplicates:
            duplicates.append(Flagged(key, job.image_id, job.duplicates))
        if (job.state is JobState.IMPORTED and job.changed_fp is not None
                and job.changed_fp != job.fingerprint):
            changed.append(Flagged(key, job.image_id))
        if job.state is JobState.IMPORTED:
            tally[job.via if job.via in ("reconcile", "existing") else "import"] += 1
        else:
            tally[job.state.value] += 1
        if job.state is JobState.FAILED:
            code = job.code or "Unknown"
            failure_counts[code] = failure_counts.get(code, 0) + 1
            examples[code] = _better_example(examples.get(code), key, job)
        if job.image_status is not None:
            image_counts[job.image_status] = image_counts.get(job.image_status, 0) + 1
            seconds = images.setdefault(job.image_status, [])
            if job.import_seconds is not None:
                seconds.append(job.import_seconds)
    counts = Counts(imported=tally["import"], adopted=tally["reconcile"], existing=tally["existing"],
                    failed=tally["failed"], in_doubt=tally["in_doubt"], pending=tally["pending"],
                    invalid=tally["invalid"])
    groups = tuple(sorted((FailureGroup(code, count, *examples[code]) for code, count
                           in failure_counts.items()), key=lambda g: (-g.count, g.code)))
    statuses = tuple(sorted((ImageStatusGroup(
        status, image_counts[status],
        round(sum(secs) / len(secs), 3) if secs else None, max(secs) if secs else None)
        for status, secs in images.items()), key=lambda g: (-g.count, g.status)))
    return Status(journal, ledger.records, ledger.runs, counts, groups, ledger.last_run,
                  ledger.learned_rate, statuses, tuple(duplicates), tuple(changed))


def _better_example(current: _Example | None, key: str, job: JobLedger) -> _Example:
    """The first failed job of a code, unless a later one has a RequestId and it has none."""
    request_id = job.request_ids[-1] if job.request_ids else None
    if current is not None and (current[2] is not None or request_id is None):
        return current
    return (key, job.message, request_id, job.source, job.line)


def render_text(status: Status, *, width: int = 100) -> str:
    """The human table: states, failures by code, last run, learned rate, image statuses."""
    c = status.counts
    lines = [f"journal {status.journal}: {_plural(status.records, 'record')}, "
             f"{_plural(status.runs, 'run')}", ""]
    rows = [("imported now", c.imported), ("adopted by reconcile", c.adopted),
            ("skipped existing", c.existing), ("failed", c.failed), ("in doubt", c.in_doubt),
            ("pending", c.pending), ("invalid (last run)", c.invalid), ("total", c.total)]
    lines += [f"  {label:<22}{n:>9}" for label, n in rows]
    if status.failures:
        lines += ["", f"  {'failures by code':<34}{'count':>7}  example"]
        for g in status.failures:
            where = f" ({g.source}:{g.line})" if g.source else ""
            lines.append(f"  {_cut(g.code, 33):<34}{g.count:>7}  job {g.job}{where}")
            lines.append(f"  {'':<43}RequestId {g.request_id or '-'}")
            if g.message:
                lines.append(f"  {'':<43}{_cut(' '.join(g.message.split()), width - 45)}")
    lines.append("")
    lines.append(_run_line(status.last_run))
    if status.learned_rate is not None:
        lines.append(f"learned rate: {status.learned_rate:g} requests/s (the next run starts near it)")
    if status.image_statuses:
        parts = []
        for img in status.image_statuses:
            timing = f" (mean {img.mean_seconds:g}s, max {img.max_seconds:g}s)" if (
                img.mean_seconds is not None and img.max_seconds is not None) else ""
            parts.append(f"{img.status} {img.count}{timing}")
        lines.append("image statuses: " + ", ".join(parts))
    if status.duplicates:
        lines += ["", f"DUPLICATES: {_plural(len(status.duplicates), 'job')} with a second image "
                      "(delete the orphans: `ens-migrate audit --delete-duplicates`)"]
        lines += [f"  {d.job}: journal holds {d.image_id or '-'}; orphans {', '.join(d.others)}"
                  for d in status.duplicates]
    if status.changed:
        lines += ["", f"changed since imported (not sent again; `run --reimport-changed` replaces "
                      f"them): {_plural(len(status.changed), 'job')}"]
        lines += [f"  {d.job}: imported as {d.image_id or '-'}" for d in status.changed]
    lines += _hints(c)
    return "\n".join(lines) + "\n"


def _run_line(run: RunInfo | None) -> str:
    if run is None:
        return "last run: none recorded"
    if run.ended is None:
        return (f"last run (#{run.index}): started {run.started or '?'}, "
                "no end recorded (still running, or killed)")
    meaning = ExitCode.meaning_of(run.exit_code)
    stop = run.stop or "finished"
    detail = f" ({run.detail})" if run.detail else ""
    return (f"last run (#{run.index}): started {run.started or '?'}, ended {run.ended}, "
            f"stop: {stop}{detail}, exit code {run.exit_code} ({meaning})")


def _hints(c: Counts) -> list[str]:
    hints = []
    if c.failed:
        hints.append("failed jobs: fix the cause, then `ens-migrate run --retry-failed`, or "
                     "`ens-migrate report --failed-only` for a job list of just those")
    if c.in_doubt:
        hints.append("jobs in doubt are looked up by name before anything is resent: run again")
    if c.invalid:
        hints.append("invalid rows were never sent: fix them in the job list (`ens-migrate validate`)")
    return ["", *hints] if hints else []


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
