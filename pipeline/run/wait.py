"""Wait for imported images to finish server-side: poll DescribeSelfImages until a final status."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import anyio
import structlog

from pipeline.ens.classify import Disposition, classify, is_systemic
from pipeline.errors import CredentialsExpired, EnsError
from pipeline.journal import records as r
from pipeline.journal.ledger import JobState, Ledger
from pipeline.journal.writer import JournalWriter

log = structlog.get_logger("ens_migrate.wait")

AVAILABLE = "Available"
FAILED_STATUSES = frozenset({"Pack_failed", "Upload_failed", "Unavailable"})
WAIT_TIMEOUT = "WaitTimeout"
"""Recorded when an image was still importing after the per-image timeout (not a failure)."""
PER_IMAGE_LOOKUP = 10
"""At or below this many images left, look each one up by ImageId instead of paging them all."""
PAGE_SIZE = 50
"""Images per listing page, for comparing the cost of a listing with lookups by id."""


class StatusImage(Protocol):
    """An image as DescribeSelfImages lists it."""

    @property
    def image_id(self) -> str: ...
    @property
    def status(self) -> str | None: ...


class StatusApi(Protocol):
    """The calls the waiter needs (``pipeline.ens.client.EnsClient`` has them): listings whose
    every page is paced by the lookup rate and resumed where a throttled page stopped."""

    def iter_all_images(self) -> AsyncIterator[StatusImage]: ...
    async def find_image(self, image_id: str) -> StatusImage | None: ...


@dataclass(frozen=True, slots=True)
class Pending:
    """An imported image whose final status is not known yet."""

    key: str
    image_id: str
    since: float
    """When it was imported (POSIX seconds)."""


@dataclass(slots=True)
class WaitResult:
    """How waiting ended."""

    available: int = 0
    failed: int = 0
    timed_out: int = 0
    left: int = 0
    """Still importing when the wait was stopped."""
    polls: int = 0
    failures: list[str] = field(default_factory=list)
    expired: CredentialsExpired | None = None
    """Polling stopped early: the credentials ran out and none fresh could be had (exit 3)."""


def _posix(ts: str | None) -> float:
    if not ts:
        return time.time()
    try:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()


def pending_images(ledger: Ledger) -> list[Pending]:
    """Imported jobs whose image has no final status in the journal yet."""
    return [Pending(key, job.image_id, _posix(job.last_ts)) for key, job in ledger.jobs.items()
            if job.state is JobState.IMPORTED and job.image_id
            and job.image_status not in (AVAILABLE, *FAILED_STATUSES)]


@dataclass(slots=True)
class Waiter:
    """Polls until every pending image is Available, failed, or past its timeout."""

    api: StatusApi
    journal: JournalWriter
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    stopping: Callable[[], bool] = lambda: False
    timeout: float = 7200.0
    min_interval: float = 3.0
    max_interval: float = 30.0
    wall: Callable[[], float] = time.time
    account_images: int | None = None
    """Images the account held at the last full listing: when polling the pending images one by
    one costs fewer calls than listing them all, that is what a poll does."""

    async def wait(self, pending: list[Pending]) -> WaitResult:
        """Poll politely (the interval grows from ``min_interval`` to ``max_interval``)."""
        result = WaitResult()
        left = {p.image_id: p for p in pending}
        interval = self.min_interval
        while left and not self.stopping():
            try:
                statuses = await self._poll(set(left))
            except CredentialsExpired as exc:
                # Every call would be refused alike. Nothing is recorded for the images left, so
                # the next watch, with fresh credentials, polls them all again.
                result.expired = exc
                break
            result.polls += 1
            now = self.wall()
            for image_id, item in list(left.items()):
                status = statuses.get(image_id)
                seconds = round(now - item.since, 3)
                if status == AVAILABLE or status in FAILED_STATUSES:
                    failed = status != AVAILABLE
                    await self.journal.append(r.JOB_STATUS, item.key, {
                        "image_id": image_id, "status": status, "seconds": seconds, "failed": failed})
                    if failed:
                        result.failed += 1
                        result.failures.append(f"{item.key}: image {image_id} ended {status}")
                    else:
                        result.available += 1
                    del left[image_id]
                elif now - item.since > self.timeout:
                    await self.journal.append(r.JOB_STATUS, item.key, {
                        "image_id": image_id, "status": WAIT_TIMEOUT, "seconds": seconds,
                        "failed": False, "last_seen": status})
                    result.timed_out += 1
                    del left[image_id]
            if left and not self.stopping():
                await self.sleep(interval)
                interval = min(self.max_interval, interval * 1.5)
        result.left = len(left)
        return result

    async def _poll(self, ids: set[str]) -> dict[str, str | None]:
        statuses: dict[str, str | None] = {}
        try:
            if len(ids) <= max(PER_IMAGE_LOOKUP, self._listing_calls()):
                for image_id in ids:
                    if self.stopping():
                        break
                    image = await self.api.find_image(image_id)
                    statuses[image_id] = image.status if image is not None else None
            else:
                count = 0
                async for image in self.api.iter_all_images():
                    count += 1
                    if image.image_id in ids:
                        statuses[image.image_id] = image.status
                self.account_images = count
        except CredentialsExpired:
            raise
        except EnsError as exc:
            if classify(exc) is Disposition.PERMANENT and is_systemic(exc.code):
                raise
            log.warning("ens_migrate.wait.poll_failed",
                        message="status poll failed; trying again next round", code=exc.code, error=str(exc))
        return statuses

    def _listing_calls(self) -> int:
        """Calls one full listing of the account takes (0 before the first one)."""
        if self.account_images is None:
            return 0
        return -(-self.account_images // PAGE_SIZE)
