"""Replay folds journal records into the latest state per job; records.encode is strict."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.journal import records as r
from pipeline.journal.ledger import FINAL_STATES, JobState, Ledger, fold

KEY = "centos-7"
FP = "a" * 32


def rec(event: str, key: str | None = KEY, **fields: Any) -> dict[str, Any]:
    """A record exactly as the journal stores it (encoded, then decoded)."""
    decoded: dict[str, Any] = json.loads(r.encode(event, key, fields, ts="2026-01-01T00:00:00.000Z"))
    return decoded


def attempt(n: int = 1, fp: str = FP) -> dict[str, Any]:
    return rec(r.JOB_ATTEMPT, fp=fp, attempt=n)


def state_after(*records: dict[str, Any]) -> JobState:
    return fold(records).jobs[KEY].state


@pytest.mark.parametrize(("records", "expected"), [
    pytest.param([attempt()], JobState.IN_DOUBT, id="attempt-only"),
    pytest.param([attempt(), rec(r.JOB_ERROR, fp=FP, code="Transport.MaybeSent", ambiguous=True)],
                 JobState.IN_DOUBT, id="ambiguous-error"),
    pytest.param([attempt(), rec(r.JOB_ERROR, fp=FP, code="ServiceUnavailable", status=503,
                                 ambiguous=False)], JobState.PENDING, id="plain-error"),
    pytest.param([attempt(), rec(r.JOB_ERROR, fp=FP, code="Throttling.User", ambiguous=False,
                                 throttled=True)], JobState.PENDING, id="throttled"),
    pytest.param([attempt(), rec(r.JOB_IMPORTED, fp=FP, image_id="m-1", request_id="q")],
                 JobState.IMPORTED, id="imported"),
    pytest.param([attempt(), rec(r.JOB_RECONCILED, fp=FP, image_id="m-1")],
                 JobState.IMPORTED, id="reconciled-found"),
    pytest.param([attempt(), rec(r.JOB_RECONCILED, fp=FP, image_id=None)],
                 JobState.PENDING, id="reconciled-absent"),
    pytest.param([attempt(), rec(r.JOB_FAILED, fp=FP, code="InvalidParameter", status=400)],
                 JobState.FAILED, id="failed"),
    pytest.param([rec(r.JOB_SKIPPED, image_id="m-9")], JobState.IMPORTED, id="skipped-existing"),
    pytest.param([attempt(), rec(r.JOB_IMPORTED, fp=FP, image_id="m-1"),
                  rec(r.JOB_STATUS, status="Pack_failed", failed=True)], JobState.FAILED,
                 id="imported-then-server-failed"),
    pytest.param([attempt(), rec(r.JOB_FAILED, fp=FP, code="X"), attempt(2)], JobState.IN_DOUBT,
                 id="retry-after-failure"),
    pytest.param([attempt(), rec(r.JOB_ERROR, fp=FP, code="Transport.MaybeSent", ambiguous=True),
                  rec(r.JOB_RECONCILED, fp=FP, image_id=None), attempt(2),
                  rec(r.JOB_IMPORTED, fp=FP, image_id="m-2")], JobState.IMPORTED, id="full-cycle"),
])
def test_fold_states(records: list[dict[str, Any]], expected: JobState) -> None:
    """The last meaningful record decides the job's state."""
    assert state_after(*records) is expected


def test_invalid_row_state() -> None:
    """``job.invalid`` marks the row invalid, with its problems as the message."""
    ledger = fold([rec(r.JOB_INVALID, key="#invalid:jobs.csv:7", source="jobs.csv", line=7, name="1x",
                       problems=[{"field": "ImageName", "message": "must start with a letter"}])])
    job = ledger.jobs["#invalid:jobs.csv:7"]
    assert job.state is JobState.INVALID
    assert (job.code, job.message) == ("InvalidRow", "ImageName: must start with a letter")
    assert (job.source, job.line) == ("jobs.csv", 7)


def test_failed_keeps_error_details() -> None:
    """A failure keeps the code, message, HTTP status and every RequestId seen."""
    job = fold([attempt(), rec(r.JOB_ERROR, fp=FP, code="ServiceUnavailable", status=503,
                               message="try later", request_id="q1", ambiguous=False),
                attempt(2), rec(r.JOB_FAILED, fp=FP, code="InvalidParameter", status=400,
                                message="bad", request_id="q2")]).jobs[KEY]
    assert (job.code, job.message, job.http_status) == ("InvalidParameter", "bad", 400)
    assert job.request_ids == ("q1", "q2")


def test_imported_clears_earlier_error() -> None:
    """An import after errors leaves no stale error code on the job."""
    job = fold([attempt(), rec(r.JOB_ERROR, fp=FP, code="ServiceUnavailable", status=503,
                               ambiguous=False), attempt(2),
                rec(r.JOB_IMPORTED, fp=FP, image_id="m-1", request_id="q")]).jobs[KEY]
    assert (job.code, job.message, job.http_status, job.image_id) == (None, None, None, "m-1")


def test_attempts_counted_from_records() -> None:
    """The attempt count is the highest attempt number seen."""
    assert fold([attempt(1), attempt(2), attempt(3)]).jobs[KEY].attempts == 3


def test_fingerprint_follows_latest_record() -> None:
    """The job's fingerprint is the one of its latest record carrying one."""
    job = fold([attempt(fp="old"), rec(r.JOB_IMPORTED, fp="old", image_id="m-1"),
                attempt(fp="new")]).jobs[KEY]
    assert job.fingerprint == "new"


def test_known_image_ids_accumulate() -> None:
    """Every ImageId ever recorded for the key is remembered, once each, in order."""
    job = fold([attempt(fp="v1"), rec(r.JOB_IMPORTED, fp="v1", image_id="m-1"),
                attempt(fp="v2"), rec(r.JOB_RECONCILED, fp="v2", image_id="m-2"),
                attempt(fp="v3"), rec(r.JOB_IMPORTED, fp="v3", image_id="m-2"),
                rec(r.JOB_SKIPPED, image_id="m-3")]).jobs[KEY]
    assert job.known_image_ids == ("m-1", "m-2", "m-3")
    assert job.image_id == "m-3"


def test_via_records_how_a_job_got_done() -> None:
    """``via`` says whether the job was imported, adopted by reconcile, or found existing."""
    assert fold([rec(r.JOB_IMPORTED, image_id="m")]).jobs[KEY].via == "import"
    assert fold([rec(r.JOB_RECONCILED, image_id="m")]).jobs[KEY].via == "reconcile"
    assert fold([rec(r.JOB_SKIPPED, image_id="m")]).jobs[KEY].via == "existing"


def test_learned_rate_and_runs() -> None:
    """Run starts are counted and the last learned rate wins."""
    ledger = fold([rec(r.RUN_START, key=None), rec(r.RATE_LEARNED, key=None, rate=7.5),
                   rec(r.RUN_END, key=None), rec(r.RUN_START, key=None),
                   rec(r.RATE_LEARNED, key=None, rate=4.25)])
    assert (ledger.runs, ledger.learned_rate, ledger.records) == (2, 4.25, 5)
    assert ledger.jobs == {}


def test_unknown_event_is_ignored() -> None:
    """A record with an event this version does not know (a newer writer) changes nothing."""
    ledger = Ledger()
    ledger.apply({"v": 2, "ts": "t", "event": "job.future", "key": KEY})
    assert ledger.jobs == {}
    assert ledger.records == 1


def test_params_kept_only_when_asked() -> None:
    """Request parameters are folded in only with ``keep_params`` (report), not for a run."""
    records = [rec(r.JOB_ATTEMPT, fp=FP, attempt=1, params={"ImageName": KEY})]
    assert fold(records).jobs[KEY].params is None
    assert fold(records, keep_params=True).jobs[KEY].params == {"ImageName": KEY}


def test_final_states() -> None:
    """Only imported and failed are final."""
    assert frozenset({JobState.IMPORTED, JobState.FAILED}) == FINAL_STATES


# --- records.encode -----------------------------------------------------------------------------


def test_encode_has_schema_version_event_ts_key() -> None:
    """Every line carries the schema version, event, UTC timestamp and key, and ends in a newline."""
    line = r.encode(r.JOB_ATTEMPT, KEY, {"attempt": 1})
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    data = json.loads(line)
    assert data["v"] == r.SCHEMA_VERSION == 1
    assert (data["event"], data["key"], data["attempt"]) == (r.JOB_ATTEMPT, KEY, 1)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["ts"])


def test_encode_keeps_unicode_readable() -> None:
    """Chinese image names are written as UTF-8, not escaped."""
    assert "镜像".encode() in r.encode(r.JOB_ATTEMPT, "镜像", {})


def test_encode_rejects_unknown_event() -> None:
    """An event name outside the schema fails at write time."""
    with pytest.raises(ValueError, match=r"job\.typo"):
        r.encode("job.typo", KEY, {})


@pytest.mark.parametrize("value", [
    {1, 2}, b"bytes", Path("/tmp/x"), datetime(2026, 1, 1), object(), 1 + 2j,
])
def test_encode_rejects_non_json_values(value: object) -> None:
    """A value JSON cannot hold raises TypeError at write time instead of being repr()-ed."""
    with pytest.raises(TypeError):
        r.encode(r.JOB_FAILED, KEY, {"message": value})


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_encode_rejects_non_finite_numbers(value: float) -> None:
    """NaN and infinity are not JSON: refused at write time."""
    with pytest.raises(ValueError, match="JSON"):
        r.encode(r.RATE_LEARNED, None, {"rate": value})


def test_utc_now_format() -> None:
    """Timestamps are UTC with milliseconds and a Z."""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r.utc_now())


@pytest.mark.parametrize("reserved", ["v", "ts", "event", "key"])
def test_encode_fields_cannot_override_envelope(reserved: str) -> None:
    """A field may not replace the envelope (schema version, timestamp, event, key)."""
    with pytest.raises(ValueError, match=reserved):
        r.encode(r.JOB_ATTEMPT, KEY, {reserved: "x"})


def test_the_fold_keeps_the_last_run() -> None:
    """One fold gives the job states and the last run: its start, and its end once recorded."""
    start = {"v": 1, "event": r.RUN_START, "ts": "t1"}
    end = {"v": 1, "event": r.RUN_END, "ts": "t2", "stop": "signal", "detail": "SIGTERM", "exit_code": 3,
           "stats": {"imported": 1}}
    assert fold([]).last_run is None
    running = fold([start, start])
    assert running.last_run is not None
    assert (running.last_run.index, running.last_run.started, running.last_run.ended) == (2, "t1", None)
    ended = fold([start, end]).last_run
    assert ended is not None
    assert (ended.index, ended.started, ended.ended, ended.stop, ended.detail, ended.exit_code) == (
        1, "t1", "t2", "signal", "SIGTERM", 3)
    assert dict(ended.stats or {}) == {"imported": 1}
