"""The end-of-run summary: a line for people, and an atomic JSON document for monitoring."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pipeline.errors import ExitCode, JournalError
from pipeline.files import write_atomic
from pipeline.run.stats import RunStats, StopReason


def summary_document(stats: RunStats, *, stop: StopReason | None, detail: str | None, code: int,
                     elapsed: float, rate: float, journal: str) -> dict[str, Any]:
    """The JSON summary: counts by state, rates, durations, deferred, exit code and its meaning."""
    return {
        "schema": 1,
        "journal": journal,
        "counts": stats.to_json(),
        "elapsed_seconds": round(elapsed, 3),
        "import_rate_per_second": round(stats.requests / elapsed, 3) if elapsed > 0 else 0.0,
        "final_rate_limit": round(rate, 3),
        "stopped": stop.value if stop else None,
        "detail": detail,
        "exit_code": code,
        "exit_meaning": ExitCode.meaning_of(code),
    }


_LINE_COUNTERS = (("imported", "imported"), ("adopted", "adopted"), ("skipped_done", "already done"),
                  ("existing", "existing"), ("failed", "failed"), ("invalid", "invalid"),
                  ("skipped_failed", "skipped (failed before)"), ("in_doubt", "in doubt"),
                  ("deferred", "deferred"), ("changed", "changed since imported (not sent)"),
                  ("duplicates", "DUPLICATE images (see `status`; delete with `audit --delete-duplicates`)"))


def summary_line(stats: RunStats, elapsed: float) -> str:
    """One line for people at the end of a run: only the counters that are not zero
    (``rows 24: imported 24 in 2.3 s``); the request count when it tells more than that."""
    parts = [f"{label} {getattr(stats, name)}" for name, label in _LINE_COUNTERS if getattr(stats, name)]
    line = f"rows {stats.rows}: {', '.join(parts) or 'nothing to do'}"
    extra = [f"{n} {label}" for n, label in ((stats.throttled, "throttled"), (stats.retries, "retries")) if n]
    if extra or stats.requests != stats.imported:
        line += f"; {stats.requests} ImportImage requests" + (f" ({', '.join(extra)})" if extra else "")
    return f"{line} in {elapsed:.1f} s"


def write_private_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (``files.write_atomic``), readable by the owner only;
    ``-`` writes it to standard output instead."""
    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    try:
        write_atomic(path, text.encode("utf-8"))
    except OSError as exc:
        raise JournalError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_summary(path: Path, document: dict[str, Any]) -> None:
    """Write the summary JSON atomically (``-``: to standard output)."""
    write_private_atomic(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
