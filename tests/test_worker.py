"""One job's state machine: write-ahead attempt, send, classify, retry or reconcile, outcome.

Each test runs ``worker.process`` against the in-memory ``FakeEns`` with a real JournalWriter on
``tmp_path``, on virtual time (``FakeClock``; the rate gate without its real-clock pacer).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from pipeline.journal import records as r
from pipeline.journal.ledger import JobState
from pipeline.journal.writer import JournalWriter
from pipeline.run.breaker import BreakerConfig, CircuitBreaker
from pipeline.run.limits import Grant
from pipeline.run.retry import RetryBudget, RetryPolicy
from pipeline.run.stats import StopReason
from pipeline.run.worker import Control, WorkerContext, process
from tests.fakes import (
    LOOKUP_DENIED,
    LOOKUP_NOT_SENT,
    MAYBE_SENT_ABSENT,
    MAYBE_SENT_CREATED,
    NO_PERMISSION,
    NOT_SENT,
    OK,
    PERMANENT,
    RESIGN,
    SERVER_5XX,
    THROTTLE,
    FakeClock,
    FakeEns,
    journal_lines,
    ledger_of,
    make_ctx,
    make_job,
)

JOB = make_job("centos-7")


async def run_process(ctx: WorkerContext, *, reconcile: bool = False, last_attempt: int = 0,
                      known_ids: tuple[str, ...] = ()) -> None:
    """Run ``process`` for JOB with the journal writer alongside, then flush and close it."""
    ctx.journal.open()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ctx.journal.run)
            try:
                ctx.stats.tally(await process(ctx, JOB, reconcile=reconcile,
                                              last_attempt=last_attempt, known_ids=known_ids))
            finally:
                ctx.journal.close_input()
    finally:
        ctx.journal.close()


def events(path: Path) -> list[str]:
    return [rec["event"] for rec in journal_lines(path)]


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "run.journal.jsonl"


@pytest.fixture
def api() -> FakeEns:
    return FakeEns()


# --- the happy path ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_attempt_is_durable_before_the_request(journal: Path, api: FakeEns) -> None:
    """When the request reaches ENS, its job.attempt line is already in the file and fsynced."""
    writer = JournalWriter(journal)
    seen: list[tuple[int, int]] = []

    def check(params: Any) -> None:
        attempts = [rec for rec in journal_lines(journal)
                    if rec["event"] == r.JOB_ATTEMPT and rec["key"] == params["ImageName"]]
        seen.append((len(attempts), writer.fsyncs))

    api.on_import = check
    api.script(JOB.name, SERVER_5XX, OK)
    await run_process(make_ctx(api, writer))
    assert seen == [(1, 1), (2, 2)]


@pytest.mark.asyncio
async def test_success_journals_attempt_then_imported(journal: Path, api: FakeEns) -> None:
    """A success journals the attempt (with where the job came from and its parameters) and
    then the ImageId and RequestId."""
    ctx = make_ctx(api, JournalWriter(journal))
    await run_process(ctx)
    attempt, imported = journal_lines(journal)
    assert attempt["event"] == r.JOB_ATTEMPT
    assert (attempt["fp"], attempt["attempt"], attempt["source"], attempt["line"]) == \
        (JOB.fingerprint, 1, JOB.source, JOB.line)
    assert attempt["params"] == JOB.query()
    assert imported["event"] == r.JOB_IMPORTED
    assert imported["image_id"] == api.images[JOB.name][0]
    assert imported["request_id"] == "req-1"
    assert (ctx.stats.requests, ctx.stats.imported, ctx.stats.in_flight) == (1, 1, 0)
    assert ledger_of(journal).jobs[JOB.name].state is JobState.IMPORTED


@pytest.mark.asyncio
async def test_retry_attempt_records_are_short(journal: Path, api: FakeEns) -> None:
    """Only the first attempt carries source, line and parameters; later ones just count."""
    api.script(JOB.name, NOT_SENT, OK)
    await run_process(make_ctx(api, JournalWriter(journal)))
    attempts = [rec for rec in journal_lines(journal) if rec["event"] == r.JOB_ATTEMPT]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert "params" in attempts[0]
    assert "params" not in attempts[1]


# --- permanent, retryable, throttled ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_permanent_error_sent_once_and_failed(journal: Path, api: FakeEns) -> None:
    """A permanent error is never retried: one request, a job.failed with code, message, HTTP
    status and RequestId."""
    api.script(JOB.name, PERMANENT)
    ctx = make_ctx(api, JournalWriter(journal))
    await run_process(ctx)
    assert api.import_calls() == 1
    failed = journal_lines(journal)[-1]
    assert failed["event"] == r.JOB_FAILED
    assert (failed["code"], failed["status"], failed["request_id"]) == ("InvalidParameter", 400, "req-1")
    assert failed["message"]
    assert (ctx.stats.failed, ctx.stats.retries) == (1, 0)
    assert ledger_of(journal).jobs[JOB.name].state is JobState.FAILED


@pytest.mark.asyncio
async def test_throttled_retried_without_counting(journal: Path, api: FakeEns) -> None:
    """Throttling is retried and spends neither attempts, nor retry budget, nor the breaker."""
    api.script(JOB.name, THROTTLE, THROTTLE, THROTTLE, OK)
    ctx = make_ctx(api, JournalWriter(journal), policy=RetryPolicy(max_attempts=1),
                   budget=RetryBudget(ratio=0.0, minimum=0))
    await run_process(ctx)
    assert api.import_calls() == 4
    assert (ctx.stats.throttled, ctx.stats.retries, ctx.stats.failed, ctx.stats.imported) == (3, 0, 0, 1)
    assert ctx.budget.spent == 0
    assert ctx.breaker.failures == 0
    assert ctx.gate.aimd.decreases >= 1
    assert ledger_of(journal).jobs[JOB.name].state is JobState.IMPORTED


@pytest.mark.asyncio
async def test_throttle_retry_after_honoured(journal: Path, api: FakeEns) -> None:
    """``x-acs-retry-after`` holds the next send back at least that long."""
    clock = FakeClock()
    api.retry_after = 3.0
    sent_at: list[float] = []
    api.on_import = lambda params: sent_at.append(clock.now)
    api.script(JOB.name, THROTTLE, OK)
    await run_process(make_ctx(api, JournalWriter(journal), clock=clock))
    assert sent_at[1] - sent_at[0] >= 3.0


@pytest.mark.asyncio
async def test_throttled_past_time_cap_fails(journal: Path, api: FakeEns) -> None:
    """Throttling that outlasts the per-job time cap ends in job.failed, with the reason."""
    api.retry_after = 4.0
    api.default = THROTTLE
    ctx = make_ctx(api, JournalWriter(journal), policy=RetryPolicy(max_elapsed=10.0))
    await run_process(ctx)
    failed = journal_lines(journal)[-1]
    assert failed["event"] == r.JOB_FAILED
    assert failed["code"] == "Throttling.User"
    assert "throttled" in failed["reason"]
    assert api.import_calls() <= 4


@pytest.mark.asyncio
async def test_retryable_error_backs_off_until_max_attempts(journal: Path, api: FakeEns) -> None:
    """A request that never left is retried with backoff, ``max_attempts`` requests in all, then
    recorded failed."""
    api.default = NOT_SENT
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=10.0)
    ctx = make_ctx(api, JournalWriter(journal), clock=clock, policy=policy, rand=lambda: 0.5)
    await run_process(ctx)
    assert api.import_calls() == 3
    assert [d for d in clock.slept if d > 0] == [0.5, 1.0]  # rand * 1.0, rand * 2.0
    failed = journal_lines(journal)[-1]
    assert (failed["event"], failed["reason"]) == (r.JOB_FAILED, "gave up after 3 attempts")
    assert (ctx.stats.retries, ctx.budget.spent) == (2, 2)


@pytest.mark.asyncio
async def test_not_sent_resent_without_lookup(journal: Path, api: FakeEns) -> None:
    """A request that provably never left is resent directly, no lookup needed."""
    api.script(JOB.name, NOT_SENT, OK)
    await run_process(make_ctx(api, JournalWriter(journal)))
    assert (api.import_calls(), api.lookup_calls()) == (2, 0)
    assert len(api.images[JOB.name]) == 1


@pytest.mark.asyncio
async def test_resign_retried_once(journal: Path, api: FakeEns) -> None:
    """A timestamp rejection is re-signed and sent once more, without using an attempt."""
    api.script(JOB.name, RESIGN, OK)
    ctx = make_ctx(api, JournalWriter(journal), policy=RetryPolicy(max_attempts=1))
    await run_process(ctx)
    assert ledger_of(journal).jobs[JOB.name].state is JobState.IMPORTED
    assert api.import_calls() == 2


@pytest.mark.asyncio
async def test_resign_twice_fails(journal: Path, api: FakeEns) -> None:
    """A second timestamp rejection is recorded failed."""
    api.script(JOB.name, RESIGN, RESIGN, OK)
    await run_process(make_ctx(api, JournalWriter(journal)))
    assert ledger_of(journal).jobs[JOB.name].code == "InvalidTimeStamp.Expired"
    assert api.import_calls() == 2


# --- ambiguous outcomes and reconciling ------------------------------------------------------------


@pytest.mark.asyncio
async def test_ambiguous_then_present_is_adopted(journal: Path, api: FakeEns) -> None:
    """A maybe-sent request whose image exists is adopted by lookup, never sent again."""
    api.script(JOB.name, MAYBE_SENT_CREATED)
    ctx = make_ctx(api, JournalWriter(journal))
    await run_process(ctx)
    assert (api.import_calls(), api.lookup_calls()) == (1, 1)
    job = ledger_of(journal).jobs[JOB.name]
    assert (job.state, job.via, job.image_id) == (JobState.IMPORTED, "reconcile", api.images[JOB.name][0])
    assert (ctx.stats.adopted, ctx.stats.imported) == (1, 0)
    assert len(api.images[JOB.name]) == 1


@pytest.mark.asyncio
async def test_ambiguous_then_absent_is_resent(journal: Path, api: FakeEns) -> None:
    """A maybe-sent request whose image is absent is looked up at once, again once the horizon
    has passed (nothing found before it proves nothing), and only then sent again, once."""
    api.script(JOB.name, MAYBE_SENT_ABSENT, OK)
    clock = FakeClock()
    looked_at: list[float] = []
    original = api.find_images_by_name

    async def find(name: str) -> Any:
        looked_at.append(clock.now)
        return await original(name)

    api.find_images_by_name = find  # type: ignore[method-assign]
    ctx = make_ctx(api, JournalWriter(journal), clock=clock)
    ctx.horizon = 5.0
    start = clock.now
    await run_process(ctx)
    assert [kind for kind, _ in api.calls] == ["import", "find", "find", "import"]
    assert [round(t - start, 3) for t in looked_at] == [0.0, 5.0]
    assert len(api.images[JOB.name]) == 1
    assert ledger_of(journal).jobs[JOB.name].state is JobState.IMPORTED
    assert r.JOB_RECONCILED in events(journal)


@pytest.mark.asyncio
async def test_reconcile_waits_reconcile_delay(journal: Path, api: FakeEns) -> None:
    """The lookup after an ambiguous outcome waits ``reconcile_delay`` (the image may appear late)."""
    clock = FakeClock()
    looked_at: list[float] = []
    api.script(JOB.name, MAYBE_SENT_CREATED)
    ctx = make_ctx(api, JournalWriter(journal), clock=clock, reconcile_delay=2.0)
    failed_at = clock.now

    original = api.find_images_by_name

    async def find(name: str) -> Any:
        looked_at.append(clock.now)
        return await original(name)

    api.find_images_by_name = find  # type: ignore[method-assign]
    await run_process(ctx)
    assert looked_at[0] - failed_at >= 2.0


@pytest.mark.asyncio
async def test_lookup_never_adopts_known_image(journal: Path, api: FakeEns) -> None:
    """An image this key had before (an older fingerprint's) is not taken for the new request."""
    old = api.create(JOB.name)
    api.script(JOB.name, MAYBE_SENT_ABSENT, OK)
    await run_process(make_ctx(api, JournalWriter(journal)), known_ids=(old,))
    job = ledger_of(journal).jobs[JOB.name]
    assert job.state is JobState.IMPORTED
    assert job.image_id != old
    assert api.import_calls() == 2
    assert api.images[JOB.name] == [old, job.image_id]


@pytest.mark.asyncio
async def test_lookup_transient_failure_retried(journal: Path, api: FakeEns) -> None:
    """A lookup that fails transiently is tried again before deciding."""
    api.script(JOB.name, MAYBE_SENT_CREATED)
    api.script_lookup(JOB.name, LOOKUP_NOT_SENT, LOOKUP_NOT_SENT)
    await run_process(make_ctx(api, JournalWriter(journal)))
    assert (api.import_calls(), api.lookup_calls()) == (1, 3)
    assert ledger_of(journal).jobs[JOB.name].via == "reconcile"


@pytest.mark.asyncio
async def test_lookup_denied_leaves_job_in_doubt(journal: Path, api: FakeEns) -> None:
    """When the lookup cannot tell (no permission), the job stays in doubt and is not resent."""
    api.script(JOB.name, MAYBE_SENT_ABSENT)
    api.script_lookup(JOB.name, LOOKUP_DENIED)
    ctx = make_ctx(api, JournalWriter(journal))
    await run_process(ctx)
    assert api.import_calls() == 1
    assert ctx.stats.in_doubt == 1
    assert ledger_of(journal).jobs[JOB.name].state is JobState.IN_DOUBT


@pytest.mark.asyncio
async def test_lookup_attempts_exhausted_leaves_job_in_doubt(journal: Path, api: FakeEns) -> None:
    """After ``lookup_attempts`` failed lookups the job stays in doubt, not resent."""
    api.script(JOB.name, MAYBE_SENT_ABSENT)
    api.lookup_chooser = lambda name: LOOKUP_NOT_SENT
    ctx = make_ctx(api, JournalWriter(journal))
    await run_process(ctx)
    assert (api.import_calls(), api.lookup_calls()) == (1, ctx.lookup_attempts)
    assert ledger_of(journal).jobs[JOB.name].state is JobState.IN_DOUBT


@pytest.mark.asyncio
async def test_in_doubt_job_found_is_not_sent(journal: Path, api: FakeEns) -> None:
    """A job in doubt from an earlier run is looked up first; found, it is adopted, unsent."""
    api.create(JOB.name)
    ctx = make_ctx(api, JournalWriter(journal))
    await run_process(ctx, reconcile=True, last_attempt=1)
    assert api.calls == [("find", JOB.name)]
    assert (ctx.stats.adopted, ctx.breaker.finished) == (1, 1)


@pytest.mark.asyncio
async def test_in_doubt_job_absent_is_sent_after_lookup(journal: Path, api: FakeEns) -> None:
    """A job in doubt whose image is absent is sent after the lookup, numbering on from the
    earlier attempts (its horizon passed long ago)."""
    ctx = make_ctx(api, JournalWriter(journal))
    ctx.journal.open()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ctx.journal.run)
            try:
                ctx.stats.tally(await process(ctx, JOB, reconcile=True, last_attempt=2, known_ids=(),
                                              doubt_ts="2020-01-01T00:00:00.000Z"))
            finally:
                ctx.journal.close_input()
    finally:
        ctx.journal.close()
    assert api.calls == [("find", JOB.name), ("import", JOB.name)]
    attempt = next(rec for rec in journal_lines(journal) if rec["event"] == r.JOB_ATTEMPT)
    assert attempt["attempt"] == 3


# --- run-wide stops --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_budget_exhaustion_stops_the_run(journal: Path, api: FakeEns) -> None:
    """With the retry budget spent, the job is deferred and the run asked to stop (RETRY_BUDGET)."""
    api.default = SERVER_5XX
    ctx = make_ctx(api, JournalWriter(journal), budget=RetryBudget(ratio=0.0, minimum=1))
    await run_process(ctx)
    assert api.import_calls() == 2
    assert ctx.control.stop_reason is StopReason.RETRY_BUDGET
    assert "retry budget" in (ctx.control.detail or "")
    assert ctx.stats.deferred == 1
    assert ledger_of(journal).jobs[JOB.name].state is JobState.PENDING


@pytest.mark.asyncio
async def test_breaker_trip_stops_the_run(journal: Path, api: FakeEns) -> None:
    """A failure that trips the breaker asks the run to stop with BREAKER."""
    api.script(JOB.name, NO_PERMISSION)
    ctx = make_ctx(api, JournalWriter(journal),
                   breaker=CircuitBreaker(BreakerConfig(systemic_streak=1)))
    await run_process(ctx)
    assert ctx.control.stop_reason is StopReason.BREAKER
    assert "NoPermission" in (ctx.control.detail or "")


@pytest.mark.asyncio
async def test_stopping_before_send_defers(journal: Path, api: FakeEns) -> None:
    """Once the run is stopping, a job not yet sent is deferred: nothing journaled, nothing sent."""
    control = Control()
    control.stop(StopReason.SIGNAL, "SIGTERM")
    ctx = make_ctx(api, JournalWriter(journal), control=control)
    await run_process(ctx)
    assert api.calls == []
    assert journal_lines(journal) == []
    assert ctx.stats.deferred == 1


@pytest.mark.asyncio
async def test_stop_during_backoff_defers_the_retry(journal: Path, api: FakeEns) -> None:
    """A stop that arrives while a job waits to retry keeps the retry from being sent."""
    control = Control()

    def stop_on_call(params: Any) -> None:
        control.stop(StopReason.DEADLINE, "time")

    api.on_import = stop_on_call
    api.default = NOT_SENT
    ctx = make_ctx(api, JournalWriter(journal), control=control)
    await run_process(ctx)
    assert api.import_calls() == 1
    assert ctx.stats.deferred == 1
    assert ledger_of(journal).jobs[JOB.name].state is JobState.PENDING


class HeldGate:
    """A gate that grants only when the test says so (the worker waits at it)."""

    def __init__(self) -> None:
        self.waiting = anyio.Event()
        self.release = anyio.Event()

    async def acquire_grant(self) -> Grant:
        self.waiting.set()
        await self.release.wait()
        return Grant(0, 0.0)

    async def sending(self, grant: Grant) -> None:
        pass

    def on_success(self) -> None:
        pass

    def on_throttle(self, epoch: int, retry_after: float | None) -> None:
        pass


async def run_one(ctx: WorkerContext) -> None:
    ctx.stats.tally(await process(ctx, JOB, reconcile=False, last_attempt=0, known_ids=()))


async def stop_while_at_gate(journal: Path, api: FakeEns, reason: StopReason) -> WorkerContext:
    gate = HeldGate()
    ctx = make_ctx(api, JournalWriter(journal))
    ctx.gate = gate  # type: ignore[assignment]
    ctx.journal.open()
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(ctx.journal.run)
            async with anyio.create_task_group() as work:
                work.start_soon(run_one, ctx)
                await gate.waiting.wait()
                ctx.control.stop(reason, "stop")
                gate.release.set()
            ctx.journal.close_input()
    finally:
        ctx.journal.close()
    return ctx


@pytest.mark.asyncio
async def test_abort_while_waiting_at_gate_sends_nothing(journal: Path, api: FakeEns) -> None:
    """An abort while a job waits for a rate slot: not sent, and recorded as not sent (deferred)."""
    ctx = await stop_while_at_gate(journal, api, StopReason.ABORT)
    assert api.calls == []
    assert ctx.stats.deferred == 1


@pytest.mark.asyncio
async def test_drain_while_waiting_at_gate_sends_nothing(journal: Path, api: FakeEns) -> None:
    """A drain (no new requests) that starts while a job waits for a rate grant keeps it unsent,
    and the journal closes its attempt as not sent: pending, so the next run needs no lookup."""
    ctx = await stop_while_at_gate(journal, api, StopReason.SIGNAL)
    assert api.calls == []
    assert ctx.stats.deferred == 1
    assert ledger_of(journal).jobs[JOB.name].state is JobState.PENDING


@pytest.mark.asyncio
async def test_run_start_not_required_for_process(journal: Path, api: FakeEns) -> None:
    """``process`` writes only job records (run records are the runner's)."""
    await run_process(make_ctx(api, JournalWriter(journal)))
    assert all(json.loads(raw)["key"] == JOB.name for raw in journal.read_bytes().splitlines())
