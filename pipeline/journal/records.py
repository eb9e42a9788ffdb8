"""Journal record schema: event names, the schema version, and strict JSON encoding."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

SCHEMA_VERSION = 1

RUN_START = "run.start"
RUN_END = "run.end"
RATE_LEARNED = "rate.learned"
JOB_INVALID = "job.invalid"
JOB_ATTEMPT = "job.attempt"
JOB_ERROR = "job.error"
"""A non-final failed attempt (retried later, or in doubt when ``ambiguous``)."""
JOB_IMPORTED = "job.imported"
JOB_FAILED = "job.failed"
JOB_RECONCILED = "job.reconciled"
"""The outcome of a name lookup for a job in doubt: ``image_id`` found, or null when absent."""
JOB_STATUS = "job.status"
"""A server-side import status seen while waiting (Available, Pack_failed, ...)."""
JOB_SKIPPED = "job.skipped"
"""A job found already present in ENS (``--skip-existing``)."""
JOB_DELETE = "job.delete"
"""Write-ahead intent: DeleteImage of ``image_id`` is about to leave (``reason`` says why)."""
JOB_DELETED = "job.deleted"
"""``image_id`` no longer exists: DeleteImage answered (``via`` ``deleted``), or a lookup after a
lost or "no such image" answer found it gone (``via`` ``gone``)."""
JOB_DELETE_FAILED = "job.delete_failed"
"""DeleteImage of ``image_id`` did not happen (``code``, ``message``; ``creating`` when the image
was still Creating)."""
JOB_DUPLICATE = "job.duplicate"
"""A run's own end check found more images of a job's name than the journal's one: ``image_id``
(the one the journal holds) and ``duplicates`` (the others, orphans to delete)."""
JOB_CHANGED = "job.changed"
"""An imported job's row changed since (``fp`` the new fingerprint, ``image_id`` the imported
image): reported, never sent again without ``--reimport-changed``."""
AUDIT = "audit"
"""One ``ens-migrate audit`` pass: its counts (no job key)."""

EVENTS = frozenset({
    RUN_START, RUN_END, RATE_LEARNED, JOB_INVALID, JOB_ATTEMPT, JOB_ERROR, JOB_IMPORTED,
    JOB_FAILED, JOB_RECONCILED, JOB_STATUS, JOB_SKIPPED, JOB_DELETE, JOB_DELETED, JOB_DELETE_FAILED,
    JOB_DUPLICATE, JOB_CHANGED, AUDIT,
})

_ENVELOPE = frozenset({"v", "ts", "event", "key"})
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def utc_now() -> str:
    """A UTC timestamp with milliseconds, ``2026-11-27T15:40:00.123Z``."""
    now = time.time()
    second = int(now)
    return f"{_second(second)}{int((now - second) * 1000):03d}Z"


@functools.lru_cache(maxsize=4)
def _second(second: int) -> str:
    # Two records per request share their second: formatting it once saves most of utc_now's cost.
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")


def encode(event: str, key: str | None, fields: Mapping[str, Any], *, ts: str | None = None) -> bytes:
    """One journal line. An unknown event or a value JSON cannot hold fails here, at write time."""
    if event not in EVENTS:
        raise ValueError(f"unknown journal event {event!r}")
    clash = _ENVELOPE.intersection(fields)
    if clash:
        raise ValueError(f"journal fields may not replace the envelope: {sorted(clash)}")
    record: dict[str, Any] = {"v": SCHEMA_VERSION, "ts": ts or utc_now(), "event": event, "key": key}
    record.update(fields)
    if "params" in record:
        # Parameters last: a fold that does not keep them cuts them off before decoding.
        record["params"] = record.pop("params")
    return (_encoder.encode(record) + "\n").encode("utf-8")
