"""One job from plan to outcome: write-ahead attempt, send, classify, retry or reconcile."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
import structlog

from pipeline.ens.classify import Disposition, classify, classify_import
from pipeline.errors import ApiError, CredentialsExpired, EnsError
from pipeline.joblist.job import Job
from pipeline.journal import records as r
from pipeline.journal.writer import JournalWriter
from pipeline.run.breaker import CircuitBreaker
from pipeline.run.delete import ListedImage
from pipeline.run.limits import Clock, Lookup, RateGate, Sleep
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

    async def import_image(self, params: Mapping[str, str]) -> Imported: ...
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


async def process(ctx: WorkerContext, job: Job, *, reconcile: bool, last_attempt: int,
                  known_ids: tuple[str, ...], doubt_fingerprint: str | None = None) -> None:
    """Carry one job to an outcome (or leave it pending/in doubt when the run stops).

    ``doubt_fingerprint`` is the fingerprint of the attempt left in doubt: when the row changed
    since, an image that attempt created is recorded under the old parameters, and the new ones
    are still sent (the design's "changed row is sent again").
    """
    if reconcile:
        old_fp = doubt_fingerprint or job.fingerprint
        found = await _reconcile(ctx, job, known_ids, fingerprint=old_fp)
        if found is None:
            ctx.stats.in_doubt += 1
            return
        if found and old_fp == job.fingerprint:
            ctx.breaker.record_success()
            return
        if found:
            known_ids = (*known_ids, found)
    await _send(ctx, job, last_attempt, known_ids)


async def _send(ctx: WorkerContext, job: Job, seq: int, known_ids: tuple[str, ...]) -> None:
    stats, key = ctx.stats, job.name
    # Computed once: each is a hash or a dict build, and the loop needs them on every attempt.
    fingerprint, params = job.fingerprint, job.query()
    if ctx.check_source is not None and await source_failed(ctx, job, ctx.check_source, params):
        return
    started = ctx.clock()
    tries = 0
    resigned = False
    first = True
    while True:
        if ctx.control.stopping:
            stats.deferred += 1
            return
        seq += 1
        attempt: dict[str, Any] = {"fp": fingerprint, "attempt": seq}
        if first:
            attempt.update(source=job.source, line=job.line, params=params)
            ctx.budget.record_first_attempt()
        try:
            async with _slot(ctx.slots):
                # Waiting for a slot or a rate grant can outlast a stop: look again before sending.
                if ctx.control.stopping:
                    stats.deferred += 1
                    return
                await ctx.journal.append_durable(r.JOB_ATTEMPT, key, attempt)
                epoch = -1
                with ctx.control.cancelled_on_stop():
                    epoch = await ctx.gate.acquire()
                if ctx.control.stopping:
                    # Its attempt is on disk but it was never sent: say so, or the next run would
                    # have to look it up first.
                    await ctx.journal.append(r.JOB_ERROR, key, {
                        "fp": job.fingerprint, "attempt": seq, "code": NOT_SENT_STOPPED,
                        "message": "not sent: the run was stopping", "status": None,
                        "ambiguous": False})
                    stats.deferred += 1
                    return
                first = False
                log.debug("ens_migrate.job.attempt", message="sending ImportImage", job=key, attempt=seq)
                stats.requests += 1
                stats.in_flight += 1
                try:
                    result = await ctx.api.import_image(params)
                finally:
                    stats.in_flight -= 1
        except CredentialsExpired as exc:
            await _credentials_expired(ctx, job, seq, exc)
            return
        except EnsError as exc:
            disposition = classify_import(exc)
            fields = _error_fields(exc)
            fields.update(fp=fingerprint, attempt=seq)
            if disposition is Disposition.THROTTLED:
                stats.throttled += 1
                retry_after = exc.retry_after if isinstance(exc, ApiError) else None
                ctx.gate.on_throttle(epoch, retry_after)
                await ctx.journal.append(r.JOB_ERROR, key, {**fields, "ambiguous": False, "throttled": True})
                wait = ctx.policy.delay(attempts=tries, elapsed=ctx.clock() - started, rand=ctx.rand(),
                                        retry_after=retry_after, throttled=True)
                if wait is None:
                    await _fail(ctx, job, fields, "gave up: throttled for longer than the per-job time cap")
                    return
                await ctx.sleep(min(wait, retry_after or 0.0))
                continue
            if disposition is Disposition.RESIGN and not resigned:
                resigned = True
                await ctx.journal.append(r.JOB_ERROR, key, {**fields, "ambiguous": False})
                continue
            if disposition in (Disposition.PERMANENT, Disposition.RESIGN):
                await _fail(ctx, job, fields, None)
                return
            tries += 1
            ambiguous = disposition is Disposition.AMBIGUOUS
            await ctx.journal.append(r.JOB_ERROR, key, {**fields, "ambiguous": ambiguous})
            log.info("ens_migrate.job.attempt_failed",
                     message="attempt failed", job=key, attempt=seq, code=fields["code"],
                     request_id=fields.get("request_id"), ambiguous=ambiguous)
            if ambiguous:
                await ctx.sleep(ctx.reconcile_delay)
                found = await _reconcile(ctx, job, known_ids)
                if found is None:
                    stats.in_doubt += 1
                    return
                if found:
                    ctx.breaker.record_success()
                    return
            wait = ctx.policy.delay(attempts=tries, elapsed=ctx.clock() - started, rand=ctx.rand())
            if wait is None:
                await _fail(ctx, job, fields, f"gave up after {tries} attempts")
                return
            if not ctx.budget.try_spend():
                ctx.control.stop(StopReason.RETRY_BUDGET,
                                 f"run-wide retry budget spent ({ctx.budget.spent} retries); the service "
                                 f"looks unhealthy (last: {fields['code']}); run again later to resume")
                stats.deferred += 1
                return
            stats.retries += 1
            await ctx.sleep(wait)
            continue
        ctx.gate.on_success()
        await ctx.journal.append(r.JOB_IMPORTED, key, {
            "fp": fingerprint, "attempt": seq, "image_id": result.image_id,
            "request_id": result.request_id, "via": "import"})
        stats.imported += 1
        ctx.breaker.record_success()
        return


async def source_failed(ctx: WorkerContext, job: Job, check: SourceCheck, params: Mapping[str, str]) -> bool:
    """Run the source check; a failure is recorded (``job.failed``, no attempt: nothing was sent)."""
    failure = await check(params)
    if failure is None:
        return False
    code, message = failure
    await ctx.journal.append(r.JOB_FAILED, job.name, {
        "fp": job.fingerprint, "code": code, "message": message, "status": None,
        "source": job.source, "line": job.line, "params": params})
    ctx.stats.failed += 1
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
    ctx.stats.deferred += 1


async def _fail(ctx: WorkerContext, job: Job, fields: dict[str, Any], why: str | None) -> None:
    if why:
        fields = {**fields, "reason": why}
    await ctx.journal.append(r.JOB_FAILED, job.name, fields)
    ctx.stats.failed += 1
    log.warning("ens_migrate.job.failed", message="job failed", job=job.name, location=job.location,
                code=fields["code"], error=fields.get("message"), request_id=fields.get("request_id"))
    tripped = ctx.breaker.record_failure(str(fields["code"]))
    if tripped:
        ctx.control.stop(StopReason.BREAKER, tripped)


async def _reconcile(ctx: WorkerContext, job: Job, known_ids: tuple[str, ...], *,
                     fingerprint: str | None = None) -> str | None:
    """Look the name up: the adopted ImageId, "" when provably absent, None when we cannot tell."""
    for attempt in range(ctx.lookup_attempts):
        # Every page of the lookup is paced (and a failed page retried) by the client's paging.
        ctx.stats.lookups += 1
        try:
            async with _slot(ctx.slots):
                images = await ctx.api.find_images_by_name(job.name)
        except EnsError as exc:
            disposition = classify(exc)
            log.info("ens_migrate.job.lookup_failed",
                     message="lookup failed", job=job.name, code=exc.code, try_=attempt + 1)
            if disposition is Disposition.PERMANENT:
                return None
            await ctx.sleep(ctx.policy.delay(attempts=attempt + 1, elapsed=0.0, rand=ctx.rand()) or 0.5)
            continue
        fresh = [im.image_id for im in images if im.image_id not in known_ids]
        if fresh:
            if len(fresh) > 1:
                log.warning("ens_migrate.job.several_images",
                            message="several images carry this name", job=job.name, image_ids=fresh)
            await ctx.journal.append(r.JOB_RECONCILED, job.name,
                                     {"fp": fingerprint or job.fingerprint, "image_id": fresh[0]})
            ctx.stats.adopted += 1
            return fresh[0]
        await ctx.journal.append(r.JOB_RECONCILED, job.name,
                                 {"fp": fingerprint or job.fingerprint, "image_id": None})
        return ""
    return None


