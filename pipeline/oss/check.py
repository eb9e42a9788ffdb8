"""Source checks: every OSS object a job names exists, is not empty and (optionally) is qcow2.

The run calls ``SourceChecker.check`` before a job's first ImportImage: a job that fails it is
recorded failed with a ``Source.*`` code and never sent (and checked again on every later run).
HeadObject / GetObject calls are paced by their own rate (``--oss-rate``) and retried when OSS
does not answer; OSS unreachable after the retries turns the check off for the run (one warning:
ENS reads OSS itself). A bucket answering 403 is warned about once and not checked again; a
bucket OSS says does not exist (NoSuchBucket) is warned about once, and every job naming it fails
``Source.NoSuchBucket`` without another call.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import anyio
import structlog

from pipeline.ens.credentials import CredentialSource
from pipeline.joblist.job import Job
from pipeline.oss.client import ObjectInfo, OssClient, OssError, oss_endpoint, request_id_note
from pipeline.oss.source import EMPTY, NO_BUCKET, NOT_FOUND, NOT_QCOW2, SCHEME, NamedObject, named_objects

log = structlog.get_logger("ens_migrate.sources")

QCOW2_MAGIC = b"QFI\xfb"


@dataclass(frozen=True, slots=True)
class SourceFailure:
    """Why a job cannot be imported: a ``Source.*`` code and a message naming the object."""

    code: str
    message: str


class Pacer:
    """At most ``rate`` grants in any second, one every ``(1 + guard)/rate`` seconds (never a burst).

    Grants exactly ``1/rate`` apart put ``rate + 1`` of them in a closed one-second window, and
    jitter between grant and arrival at OSS can squeeze that into less; ``guard`` (5% of the rate)
    keeps ``rate + 1`` grants more than a second apart with up to 50 ms of jitter.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic, *,
                 guard: float = 0.05) -> None:
        self.interval = (1.0 + guard) / rate if rate > 0 else 0.0
        self.clock = clock
        self._next = 0.0
        self._lock = anyio.Lock()

    async def acquire(self) -> None:
        """Wait for the next grant."""
        async with self._lock:
            now = self.clock()
            if self._next > now:
                await anyio.sleep(self._next - now)
                now = self.clock()
            self._next = max(now, self._next) + self.interval


class SourceChecker:
    """Checks jobs' OSS objects with one client per region; shared by every worker of a run."""

    def __init__(self, client_for: Callable[[str], OssClient], *, rate: float, attempts: int = 3,
                 check_format: bool = False, sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client_for = client_for
        self._clients: dict[str, OssClient] = {}
        self.pacer = Pacer(rate, clock)
        self.attempts = max(1, attempts)
        self.check_format = check_format
        self._sleep = sleep
        self.denied: set[str] = set()
        self.missing: dict[str, str] = {}
        """Buckets OSS said do not exist -> the RequestId of that answer."""
        self.disabled = False
        self.checked = 0

    def client(self, region: str) -> OssClient:
        """The region's client (made on first use)."""
        if region not in self._clients:
            self._clients[region] = self._client_for(region)
        return self._clients[region]

    async def close(self) -> None:
        """Close every client."""
        for client in self._clients.values():
            await client.__aexit__(None, None, None)

    async def check(self, params: Mapping[str, str]) -> SourceFailure | None:
        """None when every object the job names is fine (or cannot be checked), else the failure."""
        for named in named_objects(params):
            if self.disabled:
                return None
            if named.bucket in self.denied:
                continue
            if named.bucket in self.missing:
                return self._no_bucket(named)
            failure = await self._one(named, params.get("ImageFormat", "qcow2"))
            if failure is not None:
                return failure
        return None

    def _no_bucket(self, named: NamedObject) -> SourceFailure:
        asked = request_id_note(self.missing[named.bucket])
        return SourceFailure(NO_BUCKET, f"{named.field} {named.bucket!r}: no such bucket (OSS NoSuchBucket, "
                             f"region {named.region}{asked}); {SCHEME}{named.bucket}/{named.key} cannot be "
                             "imported: fix OSSBucket (or OSSRegion), or create the bucket (the job is "
                             "checked again on the next run)")

    async def _one(self, named: NamedObject, image_format: str) -> SourceFailure | None:
        region, bucket, key, _ = named
        where = f"{SCHEME}{bucket}/{key} (region {region})"
        client = self.client(region)
        info = await self._call(bucket, lambda: client.head(bucket, key))
        self.checked += 1
        if info is _SKIP:
            return None
        if info is _NO_BUCKET:
            return self._no_bucket(named)
        if info is None:
            return SourceFailure(NOT_FOUND, f"{where} does not exist; upload it or fix OSSBucket/OSSObject "
                                 "(the job is checked again on the next run)")
        assert isinstance(info, ObjectInfo)
        if info.size == 0:
            return SourceFailure(EMPTY, f"{where} is empty (0 bytes); upload the image again")
        if self.check_format and image_format.lower() == "qcow2":
            head = await self._call(bucket, lambda: client.first_bytes(bucket, key, len(QCOW2_MAGIC)))
            if isinstance(head, bytes) and head != QCOW2_MAGIC:
                return SourceFailure(NOT_QCOW2, f"{where} does not start with the qcow2 magic QFI\\xfb "
                                     f"(first bytes {head!r}); ImageFormat says qcow2")
        return None

    async def _call(self, bucket: str, call: Callable[[], Awaitable[object]]) -> object:
        delay = 0.5
        for attempt in range(1, self.attempts + 1):
            if self.disabled:
                return _SKIP
            await self.pacer.acquire()
            if bucket in self.missing:  # answered while this call waited for its grant
                return _NO_BUCKET
            try:
                return await call()
            except OssError as exc:
                if exc.missing_bucket:
                    if bucket not in self.missing:
                        self.missing[bucket] = exc.request_id
                        log.warning("ens_migrate.sources.no_such_bucket",
                                    message=f"OSS says bucket {bucket} does not exist (NoSuchBucket, "
                                            f"RequestId {exc.request_id or '-'}): every job naming it fails "
                                            "Source.NoSuchBucket and is not sent", bucket=bucket)
                    return _NO_BUCKET
                if exc.status == 403:
                    if bucket not in self.denied:
                        self.denied.add(bucket)
                        log.warning("ens_migrate.sources.denied",
                                    message=f"OSS refused the source check for bucket {bucket} (403 "
                                            f"{exc.code}): grant oss:GetObject on it to the tool's RAM "
                                            "identity; its jobs are sent unchecked (ENS reads OSS with "
                                            "its own role)", bucket=bucket, code=exc.code)
                    return _SKIP
                if not exc.unreachable or attempt == self.attempts:
                    if not exc.unreachable:
                        raise
                    if self.disabled:  # another worker has said it already
                        return _SKIP
                    self.disabled = True
                    log.warning("ens_migrate.sources.unreachable",
                                message=f"OSS could not be reached for source checks after {attempt} "
                                        f"tries ({exc}); the run goes on without them (ENS reads OSS "
                                        "itself)", error=str(exc))
                    return _SKIP
                await self._sleep(delay)
                delay *= 2
        return _SKIP


class _Skip:
    """The check could not be made (bucket denied, OSS unreachable)."""


class _NoBucket:
    """OSS says the bucket does not exist."""


_SKIP = _Skip()
_NO_BUCKET = _NoBucket()


def checker_for(credentials: CredentialSource, *, endpoint: str | None, insecure_http: bool, rate: float,
                check_format: bool, attempts: int = 3, timeout: float = 10.0) -> SourceChecker:
    """A checker whose clients sign with the ENS credentials; ``endpoint`` None picks
    ``oss-<OSSRegion>.aliyuncs.com`` per job's region."""

    def client_for(region: str) -> OssClient:
        return OssClient(credentials, oss_endpoint(region, endpoint, allow_insecure=insecure_http), region,
                         attempts=1, timeout=timeout)

    return SourceChecker(client_for, rate=rate, attempts=attempts, check_format=check_format)


async def check_all(checker: SourceChecker, jobs: Sequence[Job],
                    workers: int = 16) -> list[tuple[Job, SourceFailure]]:
    """``validate --check-sources``: check every job (``workers`` at a time, paced by the checker);
    the failures in job order."""
    found: dict[int, SourceFailure] = {}
    index = iter(enumerate(jobs))

    async def worker() -> None:
        for number, job in index:
            failure = await checker.check(job.query())
            if failure is not None:
                found[number] = failure

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(worker)
    finally:
        await checker.close()
    return [(jobs[n], found[n]) for n in sorted(found)]
