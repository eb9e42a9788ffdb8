"""One job from plan to outcome: write-ahead attempt, send, classify, retry or reconcile."""

from __future__ import annotations

import contextlib
import functools
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import structlog

from pipeline.ens.classify import Disposition, classify, classify_import
from pipeline.ens.transport import OnSend
from pipeline.errors import ApiError, CredentialsExpired, EnsError
from pipeline.joblist.job import Job
from pipeline.journal import records as r
from pipeline.journal.writer import JournalWriter
from pipeline.run.breaker import CircuitBreaker
from pipeline.run.delete import ListedImage
from pipeline.run.doubt import (
    Absent,
    Doubt,
    Found,
    LookupResult,
    Outcome,
    StepKind,
    Unknown,
    next_step,
    retry_step,
    seconds_since,
)
from pipeline.run.limits import Clock, Grant, Lookup, RateGate, Sleep
from pipeline.run.retry import RetryBudget, RetryPolicy
from pipeline.run.stats import RunStats, StopReason

log = structlog.get_logger("ens_migrate.worker")

NOT_SENT_STOPPED = "NotSent.Stopping"
"""Code of the record that closes an attempt a stopping run never sent (the job stays pending)."""


class Imported(Protocol):
    """What ImportImage returns."""

    @property
    def image_id(self) -> str: ...
    @property
    def request_id(self) -> str: ...


class FoundImage(Protocol):
    """An image found by name."""

    @property
    def image_id(self) -> str: ...


class ImageApi(Protocol):
    """The calls a run needs (``pipeline.ens.client.EnsClient`` has them; its lookups pace every
    page with the run's ``Lookup``)."""

    async def import_image(self, params: Mapping[str, str], *,
                           on_send: OnSend | None = None) -> Imported: ...
    async def find_images_by_name(self, name: str) -> Sequence[FoundImage]: ...
    async def find_image(self, image_id: str) -> ListedImage | None: ...
    async def delete_image(self, image_id: str) -> str: ...


SourceCheck = Callable[[Mapping[str, str]], Awaitable["tuple[str, str] | None"]]


class Control:
    """Shared stop flag: set once, read by the producer and every worker before a new send."""

    def __init__(self) -> None:
        self.stop_reason: StopReason | None = None
        self.detail: str | None = None
        self._stopped = anyio.Event()
        self._on_stop: set[anyio.CancelScope] = set()

    @property
    def stopping(self) -> bool:
        """True once the run should stop submitting."""
        return self.stop_reason is not None

    def stop(self, reason: StopReason, detail: str | None = None) -> None:
        """Ask everyone to stop submitting; the first reason wins (abort always wins)."""
        if self.stop_reason is None or reason is StopReason.ABORT:
            self.stop_reason = reason
            self.detail = detail
        self._stopped.set()
        for scope in self._on_stop:
            scope.cancel()

    @contextlib.contextmanager
    def cancelled_on_stop(self) -> Iterator[anyio.CancelScope]:
        """A scope that a stop cancels: a wait for a rate grant (a queue of them at ``--rate 1``,
        or an ``x-acs-retry-after`` pause) must not hold a drain up."""
        with anyio.CancelScope() as scope:
            if self.stopping:
                scope.cancel()
            self._on_stop.add(scope)
            try:
                yield scope
            finally:
                self._on_stop.discard(scope)

    async def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, waking early when the run is asked to stop (drain stays prompt)."""
        with anyio.move_on_after(seconds):
            await self._stopped.wait()


@dataclass(slots=True)
class WorkerContext:
    """Everything the workers share; built once per run."""

    api: ImageApi
    journal: JournalWriter
    gate: RateGate
    lookup: Lookup
    policy: RetryPolicy
    budget: RetryBudget
    breaker: CircuitBreaker
    stats: RunStats
    control: Control
    clock: Clock
    sleep: Sleep
    reconcile_delay: float = 1.0
    lookup_attempts: int = 5
    rand: Callable[[], float] = field(default_factory=lambda: random.random)
    slots: anyio.CapacityLimiter | None = None
    """Requests in flight at most (``--concurrency``); held from the write-ahead record to the
    answer, never across a backoff or a reconcile delay."""
    on_progress: Callable[[], None] | None = None
    check_source: SourceCheck | None = None
    """Before a job's first ImportImage of the run: (code, message) when its OSS objects cannot be
    imported (the job is recorded failed, never sent), None to send it (``run/sources.py``)."""
    horizon: float = 60.0
    """``reconcile_horizon``: a lookup that finds nothing proves nothing until this long after the
    ambiguous attempt (ENS may still be creating the image; listings lag)."""
    wall: Callable[[], float] = time.time
    """Wall clock, to measure an inherited doubt's horizon from its journal timestamp."""
    park: Callable[[float, Callable[[], Awaitable[Outcome]]], None] | None = None
    """The delayed queue: run the continuation at monotonic time ``due`` without holding a
    worker or a request slot (the run tallies its outcome). None: wait in place (unit tests)."""
    doubts: dict[str, Doubt] = field(default_factory=dict)
    """Jobs with an ambiguous attempt in this run (or inherited): the run's own end check."""
    sending: set[str] = field(default_factory=set)
    """Jobs whose ImportImage is in flight right now (a hard stop counts them in doubt)."""


def _slot(slots: anyio.CapacityLimiter | None) -> AbstractAsyncContextManager[Any]:
    return slots if slots is not None else contextlib.nullcontext()


def _error_fields(exc: EnsError) -> dict[str, Any]:
    fields: dict[str, Any] = {"code": exc.code, "status": exc.status}
    if isinstance(exc, ApiError):
        fields["message"] = exc.message
        fields["request_id"] = exc.request_id
    else:
        fields["message"] = str(exc)
    return fields


@dataclass(slots=True)
class _Sending:
    """One job's state across its attempts in this run."""

    seq: int
    known_ids: tuple[str, ...]
    started: float
    tries: int = 0
    resigned: bool = False
    first: bool = True
    fields: dict[str, Any] = field(default_factory=dict)
    """The last error's journal fields (what a failure records)."""


async def process(ctx: WorkerContext, job: Job, *, reconcile: bool, last_attempt: int,
                  known_ids: tuple[str, ...], doubt_fingerprint: str | None = None,
                  doubt_ts: str | None = None) -> Outcome:
    """Carry one job to an outcome (or leave it pending/in doubt when the run stops).

    An inherited doubt (``reconcile``) is looked up at once; an image found is adopted under the
    fingerprint of the attempt that made it (``doubt_fingerprint``: imported is final, a changed
    row is then reported, not sent). Nothing found is trusted only once ``horizon`` has passed
    since ``doubt_ts``, the journal time of that attempt's last record (D1).
    """
    state = _Sending(last_attempt, known_ids, ctx.clock())
    if not reconcile:
        return await _send(ctx, job, state)
    fingerprint = doubt_fingerprint or job.fingerprint
    age = seconds_since(doubt_ts, ctx.wall())
    # No timestamp (an old journal): wait the whole horizon from now.
    remaining = ctx.horizon - age if age is not None else ctx.horizon
    now = ctx.clock()
    due = now + max(0.0, remaining)
    ctx.doubts[job.name] = Doubt(job.name, fingerprint, now - (age or 0.0), known_ids=known_ids)
    return await _settle(ctx, job, state, due=due, fingerprint=fingerprint, resend=_send)


async def _send(ctx: WorkerContext, job: Job, st: _Sending) -> Outcome:
    stats, key = ctx.stats, job.name
    # Computed once: each is a hash or a dict build, and the loop needs them on every attempt.
    fingerprint, params = job.fingerprint, job.query()
    if (st.first and ctx.check_source is not None
            and await source_failed(ctx, job, ctx.check_source, params)):
        return Outcome.FAILED
    while True:
        if ctx.control.stopping:
            return Outcome.DEFERRED
        st.seq += 1
        seq = st.seq
        attempt: dict[str, Any] = {"fp": fingerprint, "attempt": seq}
        if st.first:
            attempt.update(source=job.source, line=job.line, params=params)
            ctx.budget.record_first_attempt()
        epoch = -1
        try:
            async with _slot(ctx.slots):
                # Waiting for a slot or a rate grant can outlast a stop: look again before sending.
                if ctx.control.stopping:
                    return Outcome.DEFERRED
                await ctx.journal.append_durable(r.JOB_ATTEMPT, key, attempt)
                grant: Grant | None = None
                with ctx.control.cancelled_on_stop():
                    grant = await ctx.gate.acquire_grant()
                    epoch = grant.epoch
                if ctx.control.stopping or grant is None:
                    # Its attempt is on disk but it was never sent: say so, or the next run would
                    # have to look it up first.
                    await ctx.journal.append(r.JOB_ERROR, key, {
                        "fp": job.fingerprint, "attempt": seq, "code": NOT_SENT_STOPPED,
                        "message": "not sent: the run was stopping", "status": None,
                        "ambiguous": False})
                    return Outcome.DEFERRED
                st.first = False
                log.debug("ens_migrate.job.attempt", message="sending ImportImage", job=key, attempt=seq)
                stats.requests += 1
                stats.in_flight += 1
                ctx.sending.add(key)
                doubt = ctx.doubts.get(key)
                if doubt is not None:
                    doubt.last_sent = ctx.clock()
                try:
                    # The send counts at the server's rate from when its connection is ready.
                    result = await ctx.api.import_image(
                        params, on_send=functools.partial(ctx.gate.sending, grant))
                finally:
                    stats.in_flight -= 1
                    ctx.sending.discard(key)
        except CredentialsExpired as exc:
            await _credentials_expired(ctx, job, seq, exc)
            return Outcome.DEFERRED
        except EnsError as exc:
            disposition = classify_import(exc)
            fields = _error_fields(exc)
            fields.update(fp=fingerprint, attempt=seq)
            st.fields = fields
            retry_after = exc.retry_after if isinstance(exc, ApiError) else None
            throttled = disposition is Disposition.THROTTLED
            if not throttled and disposition is not Disposition.RESIGN:
                st.tries += 1
            step = next_step(disposition, st.tries, ctx.clock() - st.started, retry_after,
                             resigned=st.resigned, policy=ctx.policy, rand=ctx.rand())
            ambiguous = step.kind is StepKind.RECONCILE
            if step.kind is StepKind.FAIL and not throttled:
                return await _fail(ctx, job, fields, step.reason)
            record = {**fields, "ambiguous": ambiguous}
            if throttled:
                stats.throttled += 1
                ctx.gate.on_throttle(epoch, retry_after)
                record["throttled"] = True
            await ctx.journal.append(r.JOB_ERROR, key, record)
            if step.kind is StepKind.FAIL:
                return await _fail(ctx, job, fields, step.reason)
            if step.kind is StepKind.WAIT_THROTTLED:
                await ctx.sleep(step.delay)
                continue
            if step.kind is StepKind.RESIGN:
                st.resigned = True
                continue
            log.info("ens_migrate.job.attempt_failed",
                     message="attempt failed", job=key, attempt=seq, code=fields["code"],
                     request_id=fields.get("request_id"), ambiguous=ambiguous)
            if ambiguous:
                now = ctx.clock()
                # Counted from when the attempt ended: at least the horizon after it was sent.
                due = now + ctx.horizon
                if key not in ctx.doubts:
                    ctx.doubts[key] = Doubt(key, fingerprint, now, known_ids=st.known_ids)
                return await _after_delay(ctx, job, st, due)
            return await _retry(ctx, job, st, step.delay)
        ctx.gate.on_success()
        await ctx.journal.append(r.JOB_IMPORTED, key, {
            "fp": fingerprint, "attempt": seq, "image_id": result.image_id,
            "request_id": result.request_id, "via": "import"})
        ctx.breaker.record_success()
        _holds(ctx, key, result.image_id)
        return Outcome.IMPORTED


def _holds(ctx: WorkerContext, key: str, image_id: str) -> None:
    doubt = ctx.doubts.get(key)
    if doubt is not None:
        doubt.image_id = image_id


async def _after_delay(ctx: WorkerContext, job: Job, st: _Sending, due: float) -> Outcome:
    """The first lookup after an ambiguous attempt, ``reconcile_delay`` later (parked meanwhile)."""
    async def settle() -> Outcome:
        return await _settle(ctx, job, st, due=due, fingerprint=job.fingerprint, resend=_resend)

    if ctx.reconcile_delay > 0:
        return await _park(ctx, ctx.clock() + ctx.reconcile_delay, settle)
    return await settle()


async def _resend(ctx: WorkerContext, job: Job, st: _Sending) -> Outcome:
    step = retry_step(st.tries, ctx.clock() - st.started, policy=ctx.policy, rand=ctx.rand())
    if step.kind is StepKind.FAIL:
        return await _fail(ctx, job, st.fields, step.reason)
    return await _retry(ctx, job, st, step.delay)


async def _retry(ctx: WorkerContext, job: Job, st: _Sending, wait: float) -> Outcome:
    if not ctx.budget.try_spend():
        ctx.control.stop(StopReason.RETRY_BUDGET,
                         f"run-wide retry budget spent ({ctx.budget.spent} retries); the service "
                         f"looks unhealthy (last: {st.fields.get('code')}); run again later to resume")
        return Outcome.DEFERRED
    ctx.stats.retries += 1
    await ctx.sleep(wait)
    return await _send(ctx, job, st)


Resend = Callable[[WorkerContext, Job, _Sending], Awaitable[Outcome]]


async def _settle(ctx: WorkerContext, job: Job, st: _Sending, *, due: float, fingerprint: str,
                  resend: Resend) -> Outcome:
    """Look the job up: adopt what is found at once; nothing found before ``due`` (the horizon)
    proves nothing, so the job is parked until then and looked up again; only after it is the
    job resent."""
    found = await _lookup(ctx, job, st.known_ids)
    if isinstance(found, Found):
        await ctx.journal.append(r.JOB_RECONCILED, job.name, {"fp": fingerprint, "image_id": found.image_id})
        if found.others:
            log.warning("ens_migrate.job.several_images",
                        message="several images carry this name", job=job.name,
                        image_ids=[found.image_id, *found.others])
        ctx.breaker.record_success()
        _holds(ctx, job.name, found.image_id)
        return Outcome.ADOPTED
    if isinstance(found, Unknown):
        return Outcome.IN_DOUBT
    if ctx.clock() < due:
        async def again() -> Outcome:
            return await _settle(ctx, job, st, due=due, fingerprint=fingerprint, resend=resend)

        return await _park(ctx, due, again)
    await ctx.journal.append(r.JOB_RECONCILED, job.name, {"fp": fingerprint, "image_id": None})
    return await resend(ctx, job, st)


async def _park(ctx: WorkerContext, due: float, then: Callable[[], Awaitable[Outcome]]) -> Outcome:
    if ctx.park is not None:
        ctx.park(due, then)
        return Outcome.PARKED
    await ctx.sleep(max(0.0, due - ctx.clock()))
    if ctx.control.stopping:
        return Outcome.IN_DOUBT
    return await then()


async def source_failed(ctx: WorkerContext, job: Job, check: SourceCheck, params: Mapping[str, str]) -> bool:
    """Run the source check; a failure is recorded (``job.failed``, no attempt: nothing was sent)."""
    failure = await check(params)
    if failure is None:
        return False
    code, message = failure
    await ctx.journal.append(r.JOB_FAILED, job.name, {
        "fp": job.fingerprint, "code": code, "message": message, "status": None,
        "source": job.source, "line": job.line, "params": params})
    log.warning("ens_migrate.job.source_failed", message="not sent: its OSS source failed the check",
                job=job.name, location=job.location, code=code, error=message)
    return True


async def _credentials_expired(ctx: WorkerContext, job: Job, seq: int, exc: CredentialsExpired) -> None:
    """Expiry is never a job failure: the request was not processed, so the job stays pending and
    the run stops resumably (exit 3) with the fix in its detail."""
    await ctx.journal.append(r.JOB_ERROR, job.name, {
        "fp": job.fingerprint, "attempt": seq, "code": exc.code,
        "message": "not processed: the credentials expired", "status": None, "ambiguous": False})
    ctx.control.stop(StopReason.CREDENTIALS, str(exc))


async def _fail(ctx: WorkerContext, job: Job, fields: dict[str, Any], why: str | None) -> Outcome:
    if why:
        fields = {**fields, "reason": why}
    await ctx.journal.append(r.JOB_FAILED, job.name, fields)
    log.warning("ens_migrate.job.failed", message="job failed", job=job.name, location=job.location,
                code=fields["code"], error=fields.get("message"), request_id=fields.get("request_id"))
    tripped = ctx.breaker.record_failure(str(fields["code"]))
    if tripped:
        ctx.control.stop(StopReason.BREAKER, tripped)
    return Outcome.FAILED


async def _lookup(ctx: WorkerContext, job: Job, known_ids: tuple[str, ...]) -> LookupResult:
    """Look the name up: ``Found`` (an image the journal does not hold yet), ``Absent``, or
    ``Unknown`` when it cannot be told."""
    code = "Lookup.Failed"
    for attempt in range(ctx.lookup_attempts):
        # Every page of the lookup is paced (and a failed page retried) by the client's paging.
        ctx.stats.lookups += 1
        try:
            async with _slot(ctx.slots):
                images = await ctx.api.find_images_by_name(job.name)
        except EnsError as exc:
            code = exc.code
            log.info("ens_migrate.job.lookup_failed",
                     message="lookup failed", job=job.name, code=exc.code, try_=attempt + 1)
            if classify(exc) is Disposition.PERMANENT:
                return Unknown(code)
            await ctx.sleep(ctx.policy.delay(attempts=attempt + 1, elapsed=0.0, rand=ctx.rand()) or 0.5)
            continue
        fresh = [im.image_id for im in images if im.image_id not in known_ids]
        if fresh:
            return Found(fresh[0], tuple(fresh[1:]))
        return Absent()
    return Unknown(code)
