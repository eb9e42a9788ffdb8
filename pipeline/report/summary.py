"""The end-of-run summary: a line for people, and an atomic JSON document for monitoring."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pipeline.errors import ExitCode, JournalError
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


def summary_line(stats: RunStats, elapsed: float) -> str:
    """One line for people at the end of a run."""
    return (f"rows {stats.rows}: imported {stats.imported}, adopted {stats.adopted}, "
            f"already done {stats.skipped_done}, existing {stats.existing}, failed {stats.failed}, "
            f"invalid {stats.invalid}, "
            f"skipped (failed before) {stats.skipped_failed}, in doubt {stats.in_doubt}, "
            f"deferred {stats.deferred}; {stats.requests} ImportImage requests "
            f"({stats.throttled} throttled, {stats.retries} retries) in {elapsed:.1f}s")


def write_private_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file, fsync, rename), readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise JournalError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_summary(path: Path, document: dict[str, Any]) -> None:
    """Write the summary JSON atomically."""
    write_private_atomic(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
