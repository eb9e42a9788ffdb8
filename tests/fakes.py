"""Shared fakes for the run-core tests: a virtual clock, a pacer-free rate gate, a scriptable ENS."""

from __future__ import annotations

import itertools
import json
import tempfile
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
from hypothesis.configuration import set_hypothesis_home_dir

from pipeline.ens.transport import OnSend
from pipeline.errors import ApiError, Delivery, TransportError
from pipeline.joblist.job import Job
from pipeline.journal.ledger import Ledger
from pipeline.journal.reader import read_ledger
from pipeline.journal.writer import JournalWriter
from pipeline.run.breaker import CircuitBreaker
from pipeline.run.limits import Lookup, RateGate
from pipeline.run.migration import Migration, RunOutcome
from pipeline.run.retry import RetryBudget, RetryPolicy
from pipeline.run.stats import RunStats
from pipeline.run.worker import Control, WorkerContext

# Keep Hypothesis' cache out of the work tree: pytest warns about a .hypothesis directory there
# (norecursedirs replaces the defaults) and filterwarnings=error turns that into a collection error.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "ens-migrate-hypothesis")


class FakeClock:
    """Virtual monotonic time; ``sleep`` advances it instead of waiting (and yields once)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)
        await anyio.lowlevel.checkpoint()


class NoPacer:
    """Stands in for aiolimiter's AsyncLimiter, which paces on the real event-loop clock."""

    async def acquire(self) -> None:
        await anyio.lowlevel.checkpoint()


class UnpacedGate(RateGate):
    """A RateGate without the aiolimiter pacer: only the sliding-window cap, pauses and AIMD.

    Overriding ``_make_pacer`` (rather than replacing ``_pacer`` once) keeps the pacer out after
    every AIMD resize too, so a fake clock drives everything the gate decides.
    """

    @staticmethod
    def _make_pacer(rate: float) -> Any:
        return NoPacer()


def make_job(name: str, *, line: int = 2, variant: str = "", source: str = "jobs.csv") -> Job:
    """A valid Job; ``variant`` changes a parameter, and so the fingerprint."""
    params = (
        ("ImageName", name),
        ("ComputeType", "ens_vm"),
        ("OSSRegion", "cn-beijing"),
        ("OSSBucket", "bucket"),
        ("OSSObject", f"images/{name}{variant}.qcow2"),
        ("OSType", "linux"),
        ("ImageFormat", "qcow2"),
        ("Architecture", "x86_64"),
    )
    return Job(source=source, line=line, params=params)


def make_jobs(count: int, prefix: str = "img") -> list[Job]:
    """``count`` distinct jobs on consecutive lines."""
    return [make_job(f"{prefix}-{i:04d}", line=i + 2) for i in range(count)]


@dataclass(frozen=True, slots=True)
class Imported:
    image_id: str
    request_id: str


@dataclass(frozen=True, slots=True)
class Found:
    image_id: str


# Scripted import outcomes.
OK = "ok"
THROTTLE = "throttle"
PERMANENT = "permanent"
NO_PERMISSION = "no_permission"
SERVER_5XX = "5xx"
NOT_SENT = "not_sent"
MAYBE_SENT_CREATED = "maybe_sent_created"
MAYBE_SENT_ABSENT = "maybe_sent_absent"
RESIGN = "resign"
# Scripted lookup outcomes.
LOOKUP_OK = "ok"
LOOKUP_NOT_SENT = "not_sent"
LOOKUP_DENIED = "denied"


@dataclass
class FakeEns:
    """An in-memory ENS: images by name, and per-name scripts of what each call does.

    ``imports[name]`` / ``lookups[name]`` are queues of outcomes consumed one per call (then
    ``default`` / ``LOOKUP_OK``); ``chooser``, when set, picks the import outcome instead.
    ``on_import`` runs at the moment a request "arrives", before the outcome.
    """

    imports: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    lookups: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    default: str = OK
    chooser: Callable[[str], str] | None = None
    lookup_chooser: Callable[[str], str] | None = None
    on_import: Callable[[Mapping[str, str]], None] | None = None
    retry_after: float | None = None
    images: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    calls: list[tuple[str, str]] = field(default_factory=list)
    _ids: Iterable[int] = field(default_factory=lambda: itertools.count(1))

    def script(self, name: str, *outcomes: str) -> None:
        self.imports[name].extend(outcomes)

    def script_lookup(self, name: str, *outcomes: str) -> None:
        self.lookups[name].extend(outcomes)

    def create(self, name: str) -> str:
        image_id = f"m-{next(iter(self._ids)):06d}"
        self.images[name].append(image_id)
        return image_id

    def import_calls(self, name: str | None = None) -> int:
        return sum(1 for kind, n in self.calls if kind == "import" and (name is None or n == name))

    def lookup_calls(self, name: str | None = None) -> int:
        return sum(1 for kind, n in self.calls if kind == "find" and (name is None or n == name))

    async def import_image(self, params: Mapping[str, str], *,
                           on_send: OnSend | None = None) -> Imported:
        if on_send is not None:  # a connection that is always ready at once
            await on_send()
        name = params["ImageName"]
        self.calls.append(("import", name))
        if self.on_import is not None:
            self.on_import(params)
        queue = self.imports[name]
        if self.chooser is not None:
            outcome = self.chooser(name)
        else:
            outcome = queue.popleft() if queue else self.default
        request_id = f"req-{len(self.calls)}"
        if outcome == OK:
            image_id = self.create(name)
            # The answer can still be lost (the caller cancelled) after the image exists.
            await anyio.lowlevel.checkpoint()
            return Imported(image_id, request_id)
        await anyio.lowlevel.checkpoint()
        if outcome == THROTTLE:
            raise ApiError(code="Throttling.User", message="Request was denied due to user flow control.",
                           status=400, request_id=request_id, retry_after=self.retry_after)
        if outcome == PERMANENT:
            raise ApiError(code="InvalidParameter", message="The specified parameter is invalid.",
                           status=400, request_id=request_id)
        if outcome == NO_PERMISSION:
            raise ApiError(code="NoPermission", message="You are not authorized.", status=403,
                           request_id=request_id)
        if outcome == SERVER_5XX:
            raise ApiError(code="ServiceUnavailable", message="The request has failed due to a "
                           "temporary failure of the server.", status=503, request_id=request_id)
        if outcome == RESIGN:
            raise ApiError(code="InvalidTimeStamp.Expired", message="The request date is too old.",
                           status=400, request_id=request_id)
        if outcome == NOT_SENT:
            raise TransportError("connection refused", delivery=Delivery.NOT_SENT)
        if outcome == MAYBE_SENT_CREATED:
            self.create(name)
            raise TransportError("read timeout", delivery=Delivery.MAYBE_SENT)
        if outcome == MAYBE_SENT_ABSENT:
            raise TransportError("connection reset", delivery=Delivery.MAYBE_SENT)
        raise AssertionError(f"unknown scripted outcome {outcome!r}")

    async def find_images_by_name(self, name: str) -> Sequence[Found]:
        self.calls.append(("find", name))
        await anyio.lowlevel.checkpoint()
        queue = self.lookups[name]
        if self.lookup_chooser is not None:
            outcome = self.lookup_chooser(name)
        else:
            outcome = queue.popleft() if queue else LOOKUP_OK
        if outcome == LOOKUP_NOT_SENT:
            raise TransportError("connection refused", delivery=Delivery.NOT_SENT)
        if outcome == LOOKUP_DENIED:
            raise ApiError(code="NoPermission", message="no DescribeSelfImages", status=403)
        return [Found(i) for i in self.images.get(name, ())]


def make_ctx(api: Any, journal: JournalWriter, *, clock: FakeClock | None = None,
             rate: float = 1000.0, policy: RetryPolicy | None = None,
             budget: RetryBudget | None = None, breaker: CircuitBreaker | None = None,
             control: Control | None = None, reconcile_delay: float = 0.0,
             rand: Callable[[], float] = lambda: 0.5) -> WorkerContext:
    """A WorkerContext on virtual time: nothing in it waits for the real clock."""
    clock = clock or FakeClock()
    return WorkerContext(
        api=api, journal=journal, gate=UnpacedGate(rate, clock=clock, sleep=clock.sleep),
        lookup=Lookup(1_000_000.0, clock=clock, sleep=clock.sleep),
        policy=policy or RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.1, max_elapsed=600.0),
        budget=budget or RetryBudget(), breaker=breaker or CircuitBreaker(), stats=RunStats(),
        control=control or Control(), clock=clock, sleep=clock.sleep, reconcile_delay=reconcile_delay,
        rand=rand)


async def run_migration(ctx: WorkerContext, jobs: Sequence[Any], *, ledger: Ledger | None = None,
                        concurrency: int = 4, retry_failed: bool = False) -> RunOutcome:
    """Run one Migration over ``jobs`` with the context's journal writer running beside it."""
    async with ctx.journal.running():
        migration = Migration(ctx, ledger or Ledger(), concurrency=concurrency,
                              retry_failed=retry_failed, handle_signals=False)
        return await migration.run(jobs)


def journal_lines(path: Path) -> list[dict[str, Any]]:
    """Every record of a journal file, decoded."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def ledger_of(path: Path) -> Ledger:
    """The journal folded, as the next run would see it."""
    return read_ledger(path)
