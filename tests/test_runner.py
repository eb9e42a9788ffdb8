"""The run: producer -> bounded stream -> workers, one journal writer, stop control, exit code.

Every test drives ``Migration`` (``handle_signals=False``) against the in-memory ``FakeEns`` with
a real JournalWriter on ``tmp_path``, on virtual time.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from pipeline.errors import ApiError, JobListError, JournalError
from pipeline.joblist.validate import InvalidRow, Problem, Validated
from pipeline.journal import records as r
from pipeline.journal.ledger import JobState
from pipeline.journal.reader import read_ledger, repair_tail
from pipeline.journal.writer import JournalWriter
from pipeline.run.breaker import BreakerConfig, CircuitBreaker
from pipeline.run.migration import Migration, Window, invalid_key
from pipeline.run.retry import RetryBudget, RetryPolicy
from pipeline.run.stats import StopReason
from tests.fakes import (
    LOOKUP_NOT_SENT,
    LOOKUP_OK,
    MAYBE_SENT_ABSENT,
    MAYBE_SENT_CREATED,
    NO_PERMISSION,
    NOT_SENT,
    OK,
    PERMANENT,
    SERVER_5XX,
    THROTTLE,
    FakeClock,
    FakeEns,
    journal_lines,
    make_ctx,
    make_job,
    make_jobs,
    run_migration,
)


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "run.journal.jsonl"


@pytest.fixture
def api() -> FakeEns:
    return FakeEns()


async def run(journal: Path, api: FakeEns, jobs: list[Any], **kwargs: Any) -> Any:
    """One run over ``jobs`` resuming from whatever the journal says."""
    concurrency = kwargs.pop("concurrency", 4)
    retry_failed = kwargs.pop("retry_failed", False)
    ctx = make_ctx(api, JournalWriter(journal), **kwargs)
    repair_tail(journal)
    return await run_migration(ctx, jobs, ledger=read_ledger(journal), concurrency=concurrency,
                               retry_failed=retry_failed)


# --- a whole run ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_all_imported_exit_0(journal: Path, api: FakeEns) -> None:
    """Every job imported once; the journal opens with run.start and ends with run.end."""
    jobs = make_jobs(25)
    outcome = await run(journal, api, jobs)
    assert (outcome.exit_code, outcome.stop) == (0, None)
    assert (outcome.stats.imported, outcome.stats.rows, outcome.stats.queued) == (25, 25, 25)
    assert all(len(api.images[j.name]) == 1 for j in jobs)
    lines = journal_lines(journal)
    assert lines[0]["event"] == r.RUN_START
    assert lines[-1]["event"] == r.RUN_END
    assert lines[-1]["exit_code"] == 0
    assert lines[-1]["stats"]["imported"] == 25


@pytest.mark.asyncio
async def test_second_run_skips_done(journal: Path, api: FakeEns) -> None:
    """A rerun sends nothing for jobs already imported, and still exits 0."""
    jobs = make_jobs(10)
    await run(journal, api, jobs)
    calls = len(api.calls)
    outcome = await run(journal, api, jobs)
    assert len(api.calls) == calls
    assert (outcome.exit_code, outcome.stats.skipped_done, outcome.stats.done) == (0, 10, 10)


@pytest.mark.asyncio
async def test_failed_jobs_skipped_unless_retry_failed(journal: Path, api: FakeEns) -> None:
    """A failed job is skipped on rerun (exit 1) and re-attempted with ``retry_failed``."""
    job = make_job("broken")
    api.script(job.name, PERMANENT)
    assert (await run(journal, api, [job])).exit_code == 1
    skipped = await run(journal, api, [job])
    assert (skipped.exit_code, skipped.stats.skipped_failed, api.import_calls()) == (1, 1, 1)
    retried = await run(journal, api, [job], retry_failed=True)
    assert (retried.exit_code, api.import_calls()) == (0, 2)


@pytest.mark.asyncio
async def test_changed_row_of_an_imported_job_is_reported_not_sent(journal: Path, api: FakeEns) -> None:
    """Imported is final (D2): a done job whose parameters changed is not imported again (two
    images under one name); the run counts it and journals job.changed once per new row."""
    await run(journal, api, [make_job("a")])
    changed = make_job("a", variant="-v2")
    outcome = await run(journal, api, [changed])
    again = await run(journal, api, [changed])
    assert (outcome.stats.imported, outcome.stats.changed, again.stats.changed) == (0, 1, 1)
    assert api.import_calls() == 1
    assert outcome.exit_code == 0
    entry = read_ledger(journal).jobs["a"]
    assert (entry.fingerprint, entry.changed_fp) == (make_job("a").fingerprint, changed.fingerprint)
    assert [rec["event"] for rec in journal_lines(journal)].count(r.JOB_CHANGED) == 1


@pytest.mark.asyncio
async def test_invalid_rows_journaled_never_sent(journal: Path, api: FakeEns) -> None:
    """An invalid row is journaled as job.invalid under its place, never sent; exit 1."""
    problem = Problem("jobs.csv", 9, "ImageName", "must start with a letter")
    bad = InvalidRow("jobs.csv", 9, "1bad", (problem,))
    outcome = await run(journal, api, [make_job("good"), bad])
    assert outcome.exit_code == 1
    assert (outcome.stats.invalid, outcome.stats.imported) == (1, 1)
    assert api.import_calls() == 1
    entry = read_ledger(journal).jobs[invalid_key(bad)]
    assert entry.state is JobState.INVALID
    assert "must start with a letter" in (entry.message or "")


@pytest.mark.asyncio
async def test_in_doubt_reconciled_before_anything_is_sent(journal: Path, api: FakeEns) -> None:
    """Jobs left in doubt by a crash are looked up first: the one whose image exists is adopted
    without a send, the absent one is sent after its lookup."""
    present, absent = make_job("present"), make_job("absent", line=3)
    # A crashed earlier run: two attempts on disk, no outcomes; one request had arrived.
    journal.write_bytes(b"".join(r.encode(r.JOB_ATTEMPT, j.name, {"fp": j.fingerprint, "attempt": 1})
                                 for j in (present, absent)))
    api.create(present.name)
    outcome = await run(journal, api, [present, absent], concurrency=1)
    # The absent one's doubt is fresh: looked up at once, again after its horizon, then sent.
    assert [kind for kind, n in api.calls if n == "absent"][:3] == ["find", "find", "import"]
    assert next(kind for kind, n in api.calls if n == "present") == "find"
    assert api.import_calls("present") == 0
    assert (outcome.exit_code, outcome.stats.adopted, outcome.stats.imported) == (0, 1, 1)
    assert all(len(api.images[n]) == 1 for n in ("present", "absent"))


@pytest.mark.asyncio
async def test_in_doubt_with_changed_row_not_done_by_old_image(journal: Path, api: FakeEns) -> None:
    """An image created by an in-doubt attempt with the old parameters does not count as the
    import of the changed row."""
    old, new = make_job("a"), make_job("a", variant="-v2")
    journal.write_bytes(r.encode(r.JOB_ATTEMPT, old.name, {"fp": old.fingerprint, "attempt": 1}))
    stale = api.create(old.name)
    await run(journal, api, [new])
    entry = read_ledger(journal).jobs["a"]
    assert not (entry.state is JobState.IMPORTED and entry.fingerprint == new.fingerprint
                and entry.image_id == stale)


# --- stops ---------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_retry_budget_exhaustion_stops_with_exit_3(journal: Path, api: FakeEns) -> None:
    """An outage spends the run-wide retry budget: the run stops (RETRY_BUDGET, exit 3) instead of
    retrying every job, and the rest are deferred for the next run."""
    api.default = SERVER_5XX
    jobs = make_jobs(30)
    outcome = await run(journal, api, jobs, concurrency=2, budget=RetryBudget(ratio=0.0, minimum=3),
                        policy=RetryPolicy(max_attempts=50, base_delay=0.001))
    assert (outcome.stop, outcome.exit_code) == (StopReason.RETRY_BUDGET, 3)
    assert outcome.stats.retries == 3
    assert api.import_calls() < 15
    assert outcome.stats.deferred >= 20
    assert outcome.stats.failed == 0
    assert journal_lines(journal)[-1]["stop"] == "retry_budget"


@pytest.mark.asyncio
async def test_breaker_trips_on_no_permission_streak(journal: Path, api: FakeEns) -> None:
    """A run where every import fails with NoPermission aborts with exit 4 after a short streak,
    long before it has tried every job."""
    api.default = NO_PERMISSION
    jobs = make_jobs(200)
    outcome = await run(journal, api, jobs, concurrency=2,
                        breaker=CircuitBreaker(BreakerConfig(systemic_streak=5)))
    assert (outcome.stop, outcome.exit_code) == (StopReason.BREAKER, 4)
    assert "NoPermission" in (outcome.detail or "")
    assert api.import_calls() <= 5 + 2 * 4  # the streak, plus what was already in flight
    assert outcome.stats.deferred >= 180


@pytest.mark.asyncio
async def test_control_stop_defers_remaining_jobs(journal: Path, api: FakeEns) -> None:
    """After Control.stop the in-flight job finishes, nothing new is sent, the rest are deferred,
    and the run exits 3 (resumable)."""
    jobs = make_jobs(40)
    clock = FakeClock()
    ctx = make_ctx(api, JournalWriter(journal), clock=clock)

    def stop_at_third(params: Any) -> None:
        if api.import_calls() == 3:
            ctx.control.stop(StopReason.SIGNAL, "stopped by SIGTERM; run again to resume")

    api.on_import = stop_at_third
    outcome = await run_migration(ctx, jobs, concurrency=1)
    assert (outcome.stop, outcome.exit_code) == (StopReason.SIGNAL, 3)
    assert outcome.stats.imported == api.import_calls() == 3
    assert outcome.stats.imported + outcome.stats.deferred == 40
    follow_up = await run(journal, api, jobs)
    assert (follow_up.exit_code, follow_up.stats.imported, follow_up.stats.skipped_done) == (0, 37, 3)


@pytest.mark.asyncio
async def test_deadline_already_passed_defers(journal: Path, api: FakeEns) -> None:
    """A time window that has already closed sends nothing new and exits 3 (DEADLINE)."""
    jobs = make_jobs(50)
    ctx = make_ctx(api, JournalWriter(journal))
    async with ctx.journal.running():
        migration = Migration(ctx, read_ledger(journal), concurrency=1, retry_failed=False,
                              handle_signals=False, window=Window(stop_at=ctx.clock() - 1.0))
        outcome = await migration.run(jobs)
    assert (outcome.stop, outcome.exit_code) == (StopReason.DEADLINE, 3)
    assert outcome.stats.deferred + outcome.stats.imported == 50
    assert outcome.stats.deferred > 40


@pytest.mark.asyncio
async def test_rejected_credentials_probe_stops_before_imports(journal: Path, api: FakeEns) -> None:
    """A probe call refused for the credentials stops the run (exit 4) before any import."""
    async def probe() -> None:
        raise ApiError(code="InvalidAccessKeyId.NotFound", message="no such key", status=404)

    ctx = make_ctx(api, JournalWriter(journal))
    async with ctx.journal.running():
        migration = Migration(ctx, read_ledger(journal), concurrency=2, retry_failed=False,
                              handle_signals=False)
        outcome = await migration.run(make_jobs(5), probe=probe)
    assert (outcome.stop, outcome.exit_code) == (StopReason.BREAKER, 4)
    assert api.calls == []


@pytest.mark.asyncio
async def test_unreadable_job_list_midway(journal: Path, api: FakeEns) -> None:
    """A job list that turns unreadable part-way stops the run like a drain: the JobListError is
    raised (exit 65) after the journal is closed properly, and no job is left half-done."""
    def rows() -> Iterator[Validated]:
        yield make_job("a")
        yield make_job("b", line=3)
        raise JobListError("jobs.json", 4, "JSON syntax error")

    with pytest.raises(JobListError):
        await run(journal, api, list_or_gen(rows()))
    lines = journal_lines(journal)
    assert lines[-1]["event"] == r.RUN_END
    assert lines[-1]["stop"] == "input"
    assert lines[-1]["exit_code"] == 65
    assert all(entry.state is JobState.IMPORTED for entry in read_ledger(journal).jobs.values())


def list_or_gen(rows: Iterator[Validated]) -> Any:
    return rows


@pytest.mark.asyncio
async def test_producer_stays_close_to_workers(journal: Path, api: FakeEns) -> None:
    """The job list is pulled lazily: the producer runs at most a small buffer ahead of the
    requests (memory does not grow with the list)."""
    pulled = 0

    def rows() -> Iterator[Validated]:
        nonlocal pulled
        for job in make_jobs(400):
            pulled += 1
            yield job

    ahead: list[int] = []
    api.on_import = lambda params: ahead.append(pulled - api.import_calls())
    outcome = await run(journal, api, list_or_gen(rows()), concurrency=2)
    assert outcome.stats.imported == 400
    # workers (4 per slot) + the stream buffer (= concurrency) + the one being handed over
    assert max(ahead) <= 2 * 4 + 2 + 1


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.asyncio
async def test_journal_write_failure_surfaces_as_journal_error(api: FakeEns) -> None:
    """If the journal cannot be written (disk full), Migration.run raises the JournalError itself,
    and nothing is sent."""
    with pytest.raises(JournalError, match="disk is full"):
        await run_migration(make_ctx(api, JournalWriter(Path("/dev/full"))), make_jobs(3))
    assert api.calls == []


# --- exactly once ----------------------------------------------------------------------------------

FAULTS = [OK] * 5 + [THROTTLE, SERVER_5XX, NOT_SENT, MAYBE_SENT_CREATED, MAYBE_SENT_ABSENT]


def crash_truncate(journal: Path, rng: random.Random) -> None:
    """Model kill -9: records after the last fsync may be lost (cut anywhere after the last
    durable job.attempt line, possibly mid-line); everything before it survives."""
    data = journal.read_bytes()
    marker = data.rfind(b'"event":"job.attempt"')
    if marker == -1:
        return
    durable_end = data.index(b"\n", marker) + 1
    journal.write_bytes(data[:rng.randint(durable_end, len(data))])


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", range(10))
async def test_exactly_once_under_random_faults(tmp_path: Path, seed: int) -> None:
    """Throttles, 5xx, unsent and maybe-sent requests (created or not), failing lookups, a small
    retry budget, hard aborts that cancel requests in flight, and crashes that lose unsynced
    records: run again until done, and every job ends with exactly one image on the server,
    the one the journal names."""
    rng = random.Random(seed)
    api = FakeEns()
    api.chooser = lambda name: rng.choice(FAULTS)
    api.lookup_chooser = lambda name: LOOKUP_NOT_SENT if rng.random() < 0.2 else LOOKUP_OK
    jobs = make_jobs(30)
    journal = tmp_path / "j.jsonl"
    codes: list[int] = []
    for _ in range(40):
        ctx = make_ctx(api, JournalWriter(journal), budget=RetryBudget(ratio=0.1, minimum=3),
                       rand=rng.random, policy=RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.01))
        repair_tail(journal)
        migration = Migration(ctx, read_ledger(journal), concurrency=rng.choice([1, 3, 8]),
                              retry_failed=True, handle_signals=False)

        def maybe_kill(params: Any, migration: Migration = migration) -> None:
            if rng.random() < 0.03:
                migration.abort(StopReason.ABORT, "killed")

        api.on_import = maybe_kill
        async with ctx.journal.running():
            outcome = await migration.run(jobs)
        codes.append(outcome.exit_code)
        assert all(len(ids) <= 1 for ids in api.images.values()), "an image was created twice"
        assert counted(outcome.stats) == outcome.stats.rows, outcome.stats
        if outcome.exit_code == 0:
            break
        if rng.random() < 0.7:
            crash_truncate(journal, rng)
    else:
        pytest.fail(f"did not converge in 40 runs: exit codes {codes}")
    ledger = read_ledger(journal)
    for job in jobs:
        assert len(api.images[job.name]) == 1
        entry = ledger.jobs[job.name]
        assert entry.state is JobState.IMPORTED
        assert entry.image_id == api.images[job.name][0]


@pytest.mark.asyncio
async def test_concurrency_caps_requests_in_flight(journal: Path, api: FakeEns) -> None:
    """No more than ``concurrency`` ImportImage requests are in flight at once."""
    in_flight = 0
    peak = 0
    original = api.import_image

    async def slow_import(params: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            return await original(params, **kwargs)
        finally:
            in_flight -= 1

    api.import_image = slow_import  # type: ignore[method-assign]
    outcome = await run(journal, api, make_jobs(60), concurrency=3)
    assert outcome.stats.imported == 60
    assert 1 < peak <= 3


@pytest.mark.asyncio
async def test_rate_learned_after_throttling(journal: Path, api: FakeEns) -> None:
    """A run that was throttled journals the rate it settled at, for the next run to start from."""
    api.script("img-0000", THROTTLE)
    await run(journal, api, make_jobs(5), concurrency=1)
    learned = read_ledger(journal).learned_rate
    assert learned is not None
    assert learned < 1000.0


@pytest.mark.asyncio
async def test_ambiguous_everywhere_resolved_without_duplicates(journal: Path, api: FakeEns) -> None:
    """Every first request times out after creating the image: all are adopted, none resent."""
    jobs = make_jobs(20)
    for job in jobs:
        api.script(job.name, MAYBE_SENT_CREATED)
    outcome = await run(journal, api, jobs, concurrency=5)
    assert (outcome.exit_code, outcome.stats.adopted, api.import_calls()) == (0, 20, 20)
    assert all(len(api.images[j.name]) == 1 for j in jobs)


@pytest.mark.asyncio
async def test_absent_everywhere_resent_once(journal: Path, api: FakeEns) -> None:
    """Every first request is lost before creating: each job is looked up (at once, and after its
    horizon), then sent once more; the run's own end check finds no second image."""
    jobs = make_jobs(20)
    for job in jobs:
        api.script(job.name, MAYBE_SENT_ABSENT)
    outcome = await run(journal, api, jobs, concurrency=5)
    assert (outcome.exit_code, outcome.stats.imported, api.import_calls()) == (0, 20, 40)
    assert api.lookup_calls() >= 20
    assert outcome.stats.duplicates == 0
    assert all(len(api.images[job.name]) == 1 for job in jobs)


def counted(stats: Any) -> int:
    """Jobs the summary line accounts for: each row in exactly one of its counters."""
    return (stats.imported + stats.adopted + stats.skipped_done + stats.existing + stats.failed
            + stats.invalid + stats.skipped_failed + stats.in_doubt + stats.deferred + stats.changed)


@pytest.mark.asyncio
@pytest.mark.parametrize(("jobs", "concurrency"), [(6, 1), (6, 4), (60, 1), (60, 4)])
async def test_hard_abort_counts_a_resumed_parked_job_once(journal: Path, api: FakeEns, jobs: int,
                                                           concurrency: int) -> None:
    """A hard abort while a job that waited out its reconcile horizon is sending again: that job
    is counted in doubt once (not as parked and in flight both), and the summary's counts add up
    to the rows, each job once."""
    parked, *others = make_jobs(jobs)
    api.script(parked.name, MAYBE_SENT_ABSENT)
    ctx = make_ctx(api, JournalWriter(journal))
    async with ctx.journal.running():
        migration = Migration(ctx, read_ledger(journal), concurrency=concurrency, retry_failed=False,
                              handle_signals=False)

        def abort_on_resend(params: Any) -> None:
            if params["ImageName"] == parked.name and api.import_calls(parked.name) == 2:
                migration.abort(StopReason.ABORT, "aborted by a second SIGINT")

        api.on_import = abort_on_resend
        outcome = await migration.run([parked, *others])
    stats = outcome.stats
    assert (outcome.stop, outcome.exit_code) == (StopReason.ABORT, 130)
    assert api.import_calls(parked.name) == 2  # the abort came with its resend in flight
    assert stats.in_doubt == 1, stats
    assert counted(stats) == stats.rows, stats
