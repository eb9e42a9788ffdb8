"""Delete one image, journaled step by step; an answer that never came is settled by a lookup."""

from __future__ import annotations

import enum
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import anyio
import structlog

from pipeline.ens.classify import Disposition, classify
from pipeline.errors import ApiError, EnsError
from pipeline.journal import records as r
from pipeline.journal.writer import JournalWriter

log = structlog.get_logger("ens_migrate.delete")

GONE_CODES = frozenset({"InvalidParameter.ImageId", "InvalidImageId.NotFound", "InvalidImage.NotFound",
                        "NotFound.Image", "Image.NotFound"})
"""Answers that mean "there is no such image" (ens-api.md §4.3: ``InvalidParameter.%s``)."""
CREATING_CODES = frozenset({"IncorrectStatus.Image"})
"""The image exists but cannot be deleted in its status (still ``Creating``)."""


class ListedImage(Protocol):
    """An image as a lookup by id finds it."""

    @property
    def image_id(self) -> str: ...
    @property
    def status(self) -> str | None: ...


class DeleteApi(Protocol):
    """The calls deleting needs (``pipeline.ens.client.EnsClient`` has them; its lookups are paced)."""

    async def delete_image(self, image_id: str) -> str: ...
    async def find_image(self, image_id: str) -> ListedImage | None: ...


class DeleteOutcome(enum.Enum):
    """How one deletion ended."""

    DELETED = "deleted"
    """DeleteImage answered success."""
    GONE = "gone"
    """The image is not there (any more): an earlier answer was lost, or someone else deleted it."""
    CREATING = "creating"
    """Still ``Creating``: it cannot be deleted yet (try again later)."""
    FAILED = "failed"
    """Refused or unreachable: the image is still there, or we could not tell."""

    @property
    def done(self) -> bool:
        """True when the image no longer exists."""
        return self in (DeleteOutcome.DELETED, DeleteOutcome.GONE)


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """The outcome of one ``Deleter.delete``."""

    outcome: DeleteOutcome
    request_id: str | None = None
    code: str | None = None
    message: str | None = None


@dataclass(slots=True)
class Deleter:
    """Deletes images for jobs: ``job.delete`` is durable before DeleteImage leaves, ``job.deleted``
    (or ``job.delete_failed``) follows. A lost or ambiguous answer is never a failure by itself:
    the image is looked up by id, and an image that is not there counts as deleted (so a lost
    answer cannot leave a job failed forever)."""

    api: DeleteApi
    journal: JournalWriter
    pace: Callable[[], Awaitable[None]]
    """Waits for a grant of the run's lookup budget before each DeleteImage."""
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    tries: int = 4
    base_delay: float = 0.5
    max_delay: float = 10.0
    rand: Callable[[], float] = field(default_factory=lambda: random.random)

    async def delete(self, key: str, image_id: str, *, reason: str) -> DeleteResult:
        """Delete ``image_id`` on behalf of job ``key`` (``reason`` is journaled with the intent)."""
        await self.journal.append_durable(r.JOB_DELETE, key, {"image_id": image_id, "reason": reason})
        last: EnsError | None = None
        for attempt in range(1, self.tries + 1):
            await self.pace()
            try:
                request_id = await self.api.delete_image(image_id)
            except EnsError as exc:
                last = exc
                result = await self._after_error(key, image_id, exc)
                if result is not None:
                    return result
                await self.sleep(self._delay(attempt, exc))
                continue
            return await self._deleted(key, image_id, DeleteOutcome.DELETED, request_id)
        assert last is not None
        return await self._failed(key, image_id, last, f"gave up after {self.tries} tries")

    async def _after_error(self, key: str, image_id: str, exc: EnsError) -> DeleteResult | None:
        """The result when ``exc`` settles it, or None to try again."""
        if exc.code in CREATING_CODES:
            await self.journal.append(r.JOB_DELETE_FAILED, key, {
                "image_id": image_id, "code": exc.code, "message": _message(exc),
                "request_id": _request_id(exc), "creating": True})
            return DeleteResult(DeleteOutcome.CREATING, _request_id(exc), exc.code, _message(exc))
        disposition = classify(exc)
        if exc.code in GONE_CODES or disposition in (Disposition.AMBIGUOUS, Disposition.RETRY):
            # The answer may be lost (our delete went through) or say there is no such image:
            # whether the image is still there settles it.
            try:
                found = await self.api.find_image(image_id)
            except EnsError as lookup_exc:
                log.info("ens_migrate.delete.lookup_failed",
                         message="could not look the image up after a failed delete", image_id=image_id,
                         code=lookup_exc.code)
                return None
            if found is None:
                log.info("ens_migrate.delete.gone", message="the image is gone: counted as deleted",
                         job=key, image_id=image_id, code=exc.code)
                return await self._deleted(key, image_id, DeleteOutcome.GONE, _request_id(exc))
            if disposition is Disposition.PERMANENT:
                return await self._failed(key, image_id, exc, f"the image is still there ({found.status})")
            return None
        if disposition is Disposition.THROTTLED or disposition is Disposition.RESIGN:
            return None
        return await self._failed(key, image_id, exc, None)

    async def _deleted(self, key: str, image_id: str, outcome: DeleteOutcome,
                       request_id: str | None) -> DeleteResult:
        await self.journal.append(r.JOB_DELETED, key, {"image_id": image_id, "request_id": request_id,
                                                       "via": outcome.value})
        log.info("ens_migrate.delete.done", message="image deleted", job=key, image_id=image_id,
                 via=outcome.value)
        return DeleteResult(outcome, request_id)

    async def _failed(self, key: str, image_id: str, exc: EnsError, why: str | None) -> DeleteResult:
        message = _message(exc) + (f" ({why})" if why else "")
        await self.journal.append(r.JOB_DELETE_FAILED, key, {
            "image_id": image_id, "code": exc.code, "message": message,
            "request_id": _request_id(exc), "creating": False})
        log.warning("ens_migrate.delete.failed", message=f"could not delete the image: {message}",
                    job=key, image_id=image_id, code=exc.code)
        return DeleteResult(DeleteOutcome.FAILED, _request_id(exc), exc.code, message)

    def _delay(self, attempt: int, exc: EnsError) -> float:
        retry_after = exc.retry_after if isinstance(exc, ApiError) else None
        cap = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return max(retry_after or 0.0, cap * (0.5 + 0.5 * self.rand()))


def _message(exc: EnsError) -> str:
    return exc.message if isinstance(exc, ApiError) else str(exc)


def _request_id(exc: EnsError) -> str | None:
    return exc.request_id if isinstance(exc, ApiError) else None


async def delete_all(deleter: Deleter, targets: Iterable[tuple[str, str]], *,
                     reason: str) -> list[tuple[str, str, DeleteResult]]:
    """Delete each (job, ImageId) in turn (paced by the deleter); return every outcome."""
    results = []
    for key, image_id in targets:
        results.append((key, image_id, await deleter.delete(key, image_id, reason=reason)))
    return results
