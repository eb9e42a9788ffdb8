"""A run's own journal records: ``run.start`` and ``run.end``, also for a run stopped in start-up."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pipeline.journal import records as r
from pipeline.journal.writer import JournalWriter
from pipeline.run.stats import RunStats, StopReason, exit_code


def start_fields(*, target: str | None, concurrency: int, rate: float, start_rate: float | None,
                 retry_failed: bool) -> dict[str, Any]:
    """The fields of ``run.start``. ``target`` is left out when None (not yet checked against the
    journal): the journal keeps the target its earlier runs recorded."""
    fields: dict[str, Any] = {"target": target, "pid": os.getpid(), "concurrency": concurrency,
                              "rate": rate, "start_rate": start_rate, "retry_failed": retry_failed}
    return {k: v for k, v in fields.items() if v is not None}


def end_fields(stats: RunStats, stop: StopReason | None, detail: str | None, code: int) -> dict[str, Any]:
    """The fields of ``run.end``: the counters, why it stopped (null: it finished), the exit code."""
    return {"stats": stats.to_json(), "stop": stop.value if stop else None, "detail": detail,
            "exit_code": code}


async def journal_startup_stop(path: Path, *, target: str | None, concurrency: int, rate: float,
                               retry_failed: bool, detail: str) -> None:
    """``run.start`` and a durable ``run.end`` (stopped by a signal, exit 3, nothing sent) for a run
    stopped during start-up. The caller holds the journal's lock and has repaired its tail; no
    other writer runs."""
    async with JournalWriter(path).running() as writer:
        await writer.append(r.RUN_START, None, start_fields(
            target=target, concurrency=concurrency, rate=rate, start_rate=None,
            retry_failed=retry_failed))
        stats = RunStats()
        await writer.append_durable(r.RUN_END, None, end_fields(
            stats, StopReason.SIGNAL, detail, exit_code(stats, StopReason.SIGNAL)))
