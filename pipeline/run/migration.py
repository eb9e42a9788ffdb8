"""The run: producer -> bounded stream -> N workers, one journal writer, stop control, exit code."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

import anyio
import anyio.lowlevel
import structlog
from anyio.streams.memory import MemoryObjectReceiveStream

from pipeline.ens.classify import is_clock_skew, rejects_credentials
from pipeline.errors import CredentialsExpired, EnsError, JobListError
from pipeline.joblist.job import Job
from pipeline.joblist.validate import InvalidRow, Validated
from pipeline.journal import records as r
from pipeline.journal.ledger import JobLedger, JobState, Ledger
from pipeline.run.delete import Deleter
from pipeline.run.doubt import Doubt, Outcome
from pipeline.run.lifecycle import end_fields, start_fields
from pipeline.run.plan import Action, PlanOptions, plan_rows
from pipeline.run.stats import RunStats, StopReason, exit_code
from pipeline.run.worker import WorkerContext, process

log = structlog.get_logger("ens_migrate.runner")

_Item = tuple[Job, Action, JobLedger | None]
WORKERS_PER_SLOT = 4


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended."""

    stats: RunStats
    stop: StopReason | None
    detail: str | None
    exit_code: int


def invalid_key(row: InvalidRow) -> str:
    """Journal key of an invalid row: by place, so it never overwrites a valid job's state."""
    return f"#invalid:{row.source}:{row.line}"


@dataclass(frozen=True, slots=True)
class Window:
    """When to stop by the clock (``--max-duration`` / ``--deadline``) and how."""

    stop_at: float | None = None
    """Monotonic time to stop submitting, or None."""
    hard: bool = False
    """Cancel in-flight requests too (they become in doubt and are reconciled next run)."""


class Migration:
    """Runs one pass over the job list against ENS, journaling everything."""

    def __init__(self, ctx: WorkerContext, ledger: Ledger, *, concurrency: int,
                 retry_failed: bool, window: Window | None = None,
                 handle_signals: bool = True,
                 progress: Callable[[RunStats], None] | None = None,
                 progress_interval: float = 5.0, target: str | None = None,
                 replace_failed_images: bool = False,
                 existing: Mapping[str, str] | None = None,
                 early_signal: Callable[[], str | None] | None = None,
                 reimport_changed: bool = False) -> None:
        self.ctx = ctx
        self.early_signal = early_signal
        """The signal (name) that arrived before this run's handlers were in place, if any."""
        self.replace_failed_images = replace_failed_images
        self.reimport_changed = reimport_changed
        self.existing = existing
        """``--skip-existing``: ImageName -> ImageId of the account's images, listed once."""
        self.target = target
        self.ledger = ledger
        self.concurrency = concurrency
        self.retry_failed = retry_failed
        self.window = window or Window()
        self.handle_signals = handle_signals
        self.progress = progress
        self.progress_interval = progress_interval
        self._taken = 0
        """Jobs the workers have taken from the queue (a hard stop defers those left in it)."""
        self._sending_at_abort: frozenset[str] = frozenset()
        """Jobs whose ImportImage was in flight when a hard stop cancelled them: in doubt."""
        self._workers_scope = anyio.CancelScope()
        """Cancelled by a hard stop; the producer stays outside it and counts what is deferred."""
        self._list_error: JobListError | None = None

    async def run(self, rows: Iterable[Validated],
                  probe: Callable[[], Awaitable[object]] | None = None) -> RunOutcome:
        """Import every job not done yet; return the outcome. ``ctx.journal`` must be running
        (``JournalWriter.running``): it drains when that block ends, and a writer that fails
        cancels this run.

        ``probe`` is one cheap authenticated call made before any import: a rejected key stops
        the run at once (exit 4), and the connection it opens keeps the first imports from
        arriving late (and so bunched with later ones) at the server.
        """
        ctx = self.ctx
        writer = ctx.journal
        await writer.append(r.RUN_START, None, start_fields(
            target=self.target, concurrency=self.concurrency, rate=ctx.gate.aimd.ceiling,
            start_rate=ctx.gate.rate, retry_failed=self.retry_failed))
        watchers = anyio.CancelScope()
        try:
            async with anyio.create_task_group() as side:
                # Signals and the deadline are watched from before the probe: a probe the server
                # holds must not hold a stop up (it is cancelled; nothing was sent).
                side.start_soon(self._watch, watchers)
                if probe is not None:
                    with ctx.control.cancelled_on_stop():
                        await self._probe(probe)
                await self._run_jobs(rows)
                if not ctx.control.stopping:
                    await self._check_doubts()
                watchers.cancel()
        finally:
            stop = ctx.control.stop_reason
            code = exit_code(ctx.stats, stop)
            if ctx.gate.aimd.decreases:
                await writer.append(r.RATE_LEARNED, None, {"rate": round(ctx.gate.learned_rate, 3)})
            with anyio.CancelScope(shield=True):
                # A dead writer (disk full) has closed its queue: nothing more can be recorded.
                with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                    await writer.append(r.RUN_END, None, end_fields(ctx.stats, stop, ctx.control.detail,
                                                                    code))
        if self._list_error is not None:
            raise self._list_error
        return RunOutcome(ctx.stats, stop, ctx.control.detail, code)

    async def _probe(self, probe: Callable[[], Awaitable[object]]) -> None:
        try:
            await probe()
        except CredentialsExpired as exc:
            self.ctx.control.stop(StopReason.CREDENTIALS, str(exc))
        except EnsError as exc:
            if is_clock_skew(exc):
                self.ctx.control.stop(StopReason.BREAKER,
                                      f"ENS refused the request time before any import: {exc}. The local "
                                      "clock is off; synchronise it (NTP, e.g. `chronyc makestep`) and run "
                                      "again")
            elif rejects_credentials(exc):
                self.ctx.control.stop(StopReason.BREAKER,
                                      f"ENS refused our credentials before any import: {exc}. Check the "
                                      "access key pair, the security token and the local clock")
            else:
                log.warning("ens_migrate.run.lookup_api_failed",
                            message="the lookup API (DescribeSelfImages) failed; in-doubt jobs cannot be "
                                    "reconciled until it works", error=str(exc))

    async def _watch(self, scope: anyio.CancelScope) -> None:
        with scope:
            async with anyio.create_task_group() as tg:
                if self.handle_signals:
                    tg.start_soon(self._signals)
                if self.window.stop_at is not None:
                    tg.start_soon(self._deadline, self.window.stop_at)
                if self.progress is not None:
                    tg.start_soon(self._report_progress)

    async def _signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
            if self.early_signal is not None and (early := self.early_signal()):
                log.warning("ens_migrate.run.draining", message="draining: stopped during start-up",
                            signal=early)
                self.ctx.control.stop(StopReason.SIGNAL, f"stopped by {early}; run again to resume")
            async for signum in signals:
                if signum == signal.SIGHUP:
                    log.info("ens_migrate.run.sighup_ignored", message="SIGHUP ignored; the run goes on")
                    continue
                name = signal.Signals(signum).name
                if self.ctx.control.stopping:
                    log.warning("ens_migrate.run.aborting",
                                message="second signal: aborting now; in-flight jobs will be reconciled "
                                        "next run",
                                signal=name)
                    self.abort(StopReason.ABORT, f"aborted by a second {name}")
                    return
                log.warning("ens_migrate.run.draining",
                            message="draining: no new requests; in-flight ones finish. Signal again to abort",
                            signal=name)
                self.ctx.control.stop(StopReason.SIGNAL, f"stopped by {name}; run again to resume")

    async def _deadline(self, stop_at: float) -> None:
        await anyio.sleep(max(0.0, stop_at - self.ctx.clock()))
        detail = "time window reached; run again to resume"
        if self.window.hard:
            log.warning("ens_migrate.run.window_hard",
                        message="time window reached: hard cutoff, cancelling in-flight requests")
            self.abort(StopReason.DEADLINE, detail)
        else:
            log.warning("ens_migrate.run.window_soft",
                        message="time window reached: no new requests; in-flight ones finish")
            self.ctx.control.stop(StopReason.DEADLINE, detail)

    async def _report_progress(self) -> None:
        assert self.progress is not None
        while True:
            await anyio.sleep(self.progress_interval)
            self.progress(self.ctx.stats)

    def abort(self, reason: StopReason, detail: str) -> None:
        """Stop now: cancel in-flight requests (they stay in doubt in the journal).

        Each job is then counted once, by the task carrying it (``_worker``, ``_resume``) or, left
        in the queue, by ``_run_jobs``: a task can still finish its job in the moment before its
        cancellation lands, so a count taken here would count that job twice.
        """
        self.ctx.control.stop(reason, detail)
        if not self._workers_scope.cancel_called:
            self._sending_at_abort = frozenset(self.ctx.sending)
            self._workers_scope.cancel()

    async def _delete_old_image(self, job: Job, image_id: str, *, reimport: bool) -> bool:
        """Delete the image a job holds before importing it again (journaled step by step by the
        Deleter; "no such image" counts as deleted once a lookup finds it gone)."""
        ctx = self.ctx
        deleter = Deleter(ctx.api, ctx.journal, pace=ctx.lookup.acquire, sleep=ctx.sleep)
        reason = "reimport-changed" if reimport else "replace-failed-image"
        result = await deleter.delete(job.name, image_id, reason=reason)
        if not result.outcome.done:
            stays = "imported (its old row)" if reimport else "failed"
            log.warning("ens_migrate.job.delete_failed",
                        message=f"could not delete the old image; the job stays {stays}", job=job.name,
                        image_id=image_id, code=result.code, error=result.message)
            if reimport:
                ctx.stats.changed += 1
            else:
                ctx.stats.skipped_failed += 1
            return False
        log.info("ens_migrate.job.deleted_old_image",
                 message="deleted the old image before importing again", job=job.name, image_id=image_id,
                 reason=reason)
        return True

    async def _run_jobs(self, rows: Iterable[Validated]) -> None:
        send, receive = anyio.create_memory_object_stream[_Item](self.concurrency)
        # More workers than request slots: a job waiting out a backoff or a reconcile delay
        # must not keep the others from sending (the slots cap what is in flight).
        if self.ctx.slots is None:
            self.ctx.slots = anyio.CapacityLimiter(self.concurrency)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._run_workers, receive)
            async with send:
                await self._produce(rows, send)
        # Handed to the workers and never taken: only a hard stop leaves any.
        self.ctx.stats.deferred += self.ctx.stats.queued - self._taken

    async def _run_workers(self, receive: MemoryObjectReceiveStream[_Item]) -> None:
        with self._workers_scope:
            # The delayed queue: a job waiting out its reconcile horizon is a sleeping task here,
            # holding neither a worker nor a request slot, so the run keeps its rate meanwhile.
            async with anyio.create_task_group() as delayed:
                def park(due: float, then: Callable[[], Awaitable[Outcome]]) -> None:
                    self.ctx.stats.parked += 1
                    delayed.start_soon(self._resume, due, then)

                self.ctx.park = park
                async with anyio.create_task_group() as workers, receive:
                    for _ in range(self.concurrency * WORKERS_PER_SLOT):
                        workers.start_soon(self._worker, receive.clone())

    async def _resume(self, due: float, then: Callable[[], Awaitable[Outcome]]) -> None:
        ctx = self.ctx
        try:
            await ctx.sleep(max(0.0, due - ctx.clock()))
            outcome = Outcome.IN_DOUBT if ctx.control.stopping else await then()
        except anyio.get_cancelled_exc_class():
            # A hard stop, asleep or while looking it up or sending it again: its ambiguous
            # attempt is unresolved, the next run reconciles it.
            ctx.stats.tally(Outcome.IN_DOUBT)
            raise
        finally:
            ctx.stats.parked -= 1
        ctx.stats.tally(outcome)

    async def _check_doubts(self) -> None:
        """The run's own check: every job that had an ambiguous attempt is looked up once more,
        one horizon after its last send; an image besides the journal's one is a duplicate,
        journaled (``job.duplicate``) and counted (exit 1)."""
        ctx = self.ctx
        for doubt in sorted(ctx.doubts.values(), key=lambda d: d.last_sent):
            if doubt.image_id is None:
                continue
            await ctx.sleep(max(0.0, doubt.last_sent + ctx.horizon - ctx.clock()))
            if ctx.control.stopping:
                return
            await self._check_one(doubt)

    async def _check_one(self, doubt: Doubt) -> None:
        ctx = self.ctx
        ctx.stats.lookups += 1
        try:
            images = await ctx.api.find_images_by_name(doubt.name)
        except EnsError as exc:
            log.warning("ens_migrate.job.check_failed",
                        message="could not look the job up for the end-of-run duplicate check; "
                                "run `ens-migrate audit` to check it", job=doubt.name, code=exc.code)
            return
        extra = [im.image_id for im in images
                 if im.image_id != doubt.image_id and im.image_id not in doubt.known_ids]
        if not extra:
            return
        await ctx.journal.append(r.JOB_DUPLICATE, doubt.name,
                                 {"image_id": doubt.image_id, "duplicates": extra})
        ctx.stats.duplicates += len(extra)
        log.warning("ens_migrate.job.duplicate",
                    message="a second image of this job exists (the backend was slower than the "
                            "reconcile horizon): delete the orphans (`ens-migrate audit "
                            "--delete-duplicates`)",
                    job=doubt.name, image_id=doubt.image_id, duplicates=extra)

    async def _produce(self, rows: Iterable[Validated],
                       send: anyio.abc.ObjectSendStream[_Item]) -> None:
        ctx, stats = self.ctx, self.ctx.stats
        try:
            options = PlanOptions(retry_failed=self.retry_failed,
                                  replace_failed_images=self.replace_failed_images, existing=self.existing,
                                  reimport_changed=self.reimport_changed)
            for index, item in enumerate(plan_rows(rows, self.ledger, options)):
                if index % 512 == 0:
                    await anyio.lowlevel.checkpoint()
                stats.rows += 1
                if isinstance(item, InvalidRow):
                    stats.invalid += 1
                    for problem in item.problems:  # FILE:LINE: Field: problem, as validate says it
                        log.warning("ens_migrate.job.invalid", message=str(problem))
                    key, fp = invalid_key(item), item.fingerprint
                    known = self.ledger.jobs.get(key)
                    if known is None or known.state is not JobState.INVALID or known.fingerprint != fp:
                        # Once per fingerprint: the same invalid list run again adds nothing.
                        await ctx.journal.append(r.JOB_INVALID, key, {
                            "fp": fp, "source": item.source, "line": item.line, "name": item.name,
                            "problems": [{"field": p.field, "message": p.message} for p in item.problems]})
                    continue
                job, action, entry = item.job, item.action, item.entry
                if action is Action.SKIP_EXISTING:
                    await ctx.journal.append(r.JOB_SKIPPED, job.name, {
                        "fp": job.fingerprint, "image_id": item.existing_id, "via": "existing",
                        "source": job.source, "line": job.line, "params": job.query()})
                    stats.existing += 1
                elif action is Action.SKIP_DONE:
                    stats.skipped_done += 1
                elif action is Action.SKIP_CHANGED:
                    await self._changed(job, entry)
                elif action is Action.SKIP_FAILED:
                    stats.skipped_failed += 1
                elif action is Action.SKIP_FAILED_IMAGE:
                    stats.skipped_failed += 1
                    log.warning("ens_migrate.job.failed_image_holds_name",
                                message="not re-imported: its earlier image failed server-side and still "
                                        "holds the name; delete it or pass --replace-failed-images",
                                job=job.name,
                                image_id=entry.image_id if entry else None)
                elif ctx.control.stopping:
                    stats.deferred += 1
                    if ctx.control.stop_reason is StopReason.ABORT:
                        return
                else:
                    try:
                        await send.send((job, action, entry))
                    except anyio.BrokenResourceError:  # a hard stop cancelled the workers
                        stats.deferred += 1
                    else:
                        stats.queued += 1
        except JobListError as exc:
            self._list_error = exc
            ctx.control.stop(StopReason.INPUT, str(exc))

    async def _changed(self, job: Job, entry: JobLedger | None) -> None:
        """An imported job whose row changed: report it (once per new row in the journal), never
        send it (a second image under one name) unless ``--reimport-changed``."""
        self.ctx.stats.changed += 1
        image_id = entry.image_id if entry else None
        log.warning("ens_migrate.job.changed_since_imported",
                    message="changed since imported: not sent again (imported is final); pass "
                            "--reimport-changed to delete the old image and import the new row",
                    job=job.name, location=job.location, image_id=image_id)
        if entry is None or entry.changed_fp != job.fingerprint:
            await self.ctx.journal.append(r.JOB_CHANGED, job.name,
                                          {"new_fp": job.fingerprint, "image_id": image_id})

    async def _worker(self, receive: anyio.abc.ObjectReceiveStream[_Item]) -> None:
        ctx = self.ctx
        async with receive:
            async for job, action, entry in receive:
                self._taken += 1
                if ctx.control.stopping:
                    ctx.stats.tally(Outcome.DEFERRED)
                    continue
                try:
                    outcome = await self._carry(job, action, entry)
                except anyio.get_cancelled_exc_class():
                    # A hard stop: in doubt if its request was in flight, else not sent.
                    ctx.stats.tally(Outcome.IN_DOUBT if job.name in self._sending_at_abort
                                    else Outcome.DEFERRED)
                    raise
                if outcome is not None:
                    ctx.stats.tally(outcome)

    async def _carry(self, job: Job, action: Action, entry: JobLedger | None) -> Outcome | None:
        """One job from the queue to its outcome (None: counted already, an old image kept)."""
        ctx = self.ctx
        if (action in (Action.REPLACE, Action.REIMPORT) and entry is not None and entry.image_id
                and not await self._delete_old_image(job, entry.image_id,
                                                     reimport=action is Action.REIMPORT)):
            return None
        return await process(
            ctx, job, reconcile=action is Action.RECONCILE,
            last_attempt=entry.attempts if entry else 0,
            known_ids=entry.known_image_ids if entry else (),
            doubt_fingerprint=entry.fingerprint if entry else None,
            doubt_ts=entry.doubt_ts if entry else None)
