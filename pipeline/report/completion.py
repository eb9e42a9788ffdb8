"""The completion report as CSV rows, and the failed-only job list for the next run (pure)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from pipeline.joblist.job import PARAMETERS
from pipeline.journal.ledger import JobLedger, JobState, Ledger
from pipeline.report.status import current_jobs

OUTCOME_COLUMNS: tuple[str, ...] = (
    "State", "ImageId", "Code", "Message", "HttpStatus", "RequestIds", "Attempts", "FirstSeen",
    "LastSeen", "Source", "Line", "ImageStatus", "ImportSeconds",
)
"""What the journal says about each job, after its ImportImage parameters."""
REPORT_COLUMNS: tuple[str, ...] = (*PARAMETERS, *OUTCOME_COLUMNS)
"""The full report's header."""


@dataclass(frozen=True, slots=True)
class LeftOut:
    """Jobs a failed-only list cannot carry, so the user can be told where to fix them."""

    invalid: int
    """Rows of the last run that were never valid jobs: fix them in the source list."""
    failed_without_params: int
    """Failed jobs whose parameters the journal does not hold (a journal from an older version)."""


def job_cells(key: str, job: JobLedger) -> list[str]:
    """The job's ImportImage parameters in ``PARAMETERS`` order, from the journal ("" if absent).

    Only ``PARAMETERS`` are written: whatever else a journal's params might hold never reaches
    a report.
    """
    params: Mapping[str, object] = job.params or {}
    cells = [_param_text(params.get(name)) for name in PARAMETERS]
    if not cells[0] and job.state is not JobState.INVALID:
        cells[0] = key  # the key is the ImageName of every valid job
    return cells


def _param_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    # DiskDeviceMapping kept as a JSON array rather than its encoded string: write it as JSON text.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def outcome_cells(job: JobLedger) -> list[str]:
    """The journal's facts about a job, in ``OUTCOME_COLUMNS`` order."""
    return [
        job.state.value,
        job.image_id or "",
        job.code or "",
        job.message or "",
        "" if job.http_status is None else str(job.http_status),
        ";".join(job.request_ids),
        str(job.attempts),
        job.first_ts or "",
        job.last_ts or "",
        job.source or "",
        "" if job.line is None else str(job.line),
        job.image_status or "",
        "" if job.import_seconds is None else str(round(job.import_seconds, 3)),
    ]


def report_rows(ledger: Ledger) -> Iterator[list[str]]:
    """The full report: header, then one row per job in journal order (stale invalid rows left out)."""
    yield list(REPORT_COLUMNS)
    for key, job in current_jobs(ledger):
        yield job_cells(key, job) + outcome_cells(job)


def failed_rows(ledger: Ledger) -> Iterator[list[str]]:
    """A job list of the failed jobs: header of ``PARAMETERS``, then their parameters."""
    yield list(PARAMETERS)
    for key, job in current_jobs(ledger):
        if job.state is JobState.FAILED and job.params:
            yield job_cells(key, job)


def left_out(ledger: Ledger) -> LeftOut:
    """Count what ``failed_rows`` cannot include."""
    invalid = without = 0
    for _, job in current_jobs(ledger):
        if job.state is JobState.INVALID:
            invalid += 1
        elif job.state is JobState.FAILED and not job.params:
            without += 1
    return LeftOut(invalid, without)


def to_csv(rows: Iterable[Sequence[str]]) -> tuple[str, int]:
    """Render rows as CSV text (quoted where needed, ``\\r\\n`` lines); return it and the data rows."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    count = -1
    for row in rows:
        writer.writerow(row)
        count += 1
    return buffer.getvalue(), max(count, 0)
