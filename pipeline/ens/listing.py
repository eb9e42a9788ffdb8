"""Paging a Describe* listing to its end: every page paced, a failed page retried and resumed."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import anyio

from pipeline.ens.classify import Disposition, classify
from pipeline.errors import ApiError, CredentialsExpired, EnsError

P = TypeVar("P", bound="Page")


class Page(Protocol):
    """What paging needs of one page."""

    @property
    def images(self) -> tuple[_HasId, ...]: ...
    @property
    def total_count(self) -> int: ...
    @property
    def page_size(self) -> int: ...


class _HasId(Protocol):
    @property
    def image_id(self) -> str: ...


class Pacer(Protocol):
    """The lookup budget every Describe call of a run shares (``pipeline.run.limits.Lookup``)."""

    async def acquire(self) -> None:
        """Wait until one more call fits the lookup rate."""

    def backoff(self, seconds: float) -> None:
        """Hold every lookup for ``seconds`` (the server throttled one)."""


class Unpaced:
    """No pacing (a single call, or a test)."""

    async def acquire(self) -> None:
        """Grant at once."""

    def backoff(self, seconds: float) -> None:
        """Ignore."""


@dataclass(frozen=True, slots=True)
class Paging:
    """How a listing paces and retries its pages; a page is read-only, so resending it is safe."""

    pacer: Pacer = field(default_factory=Unpaced)
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    tries: int = 8
    """Attempts per page before the listing gives up (the count starts afresh on each page)."""
    base_delay: float = 0.5
    max_delay: float = 10.0
    rand: Callable[[], float] = random.random
    max_pages: int = 100_000
    """A guard against a server whose TotalCount never stops growing."""

    def delay(self, failures: int, retry_after: float | None) -> float:
        """Full-jitter exponential backoff, at least the server's ``retry_after``."""
        cap = min(self.max_delay, self.base_delay * 2.0 ** (failures - 1))
        return max(retry_after or 0.0, cap * (0.5 + 0.5 * self.rand()))


Fetch = Callable[[int, int], Awaitable[P]]
"""(page_number, page_size) -> one page."""


async def fetch_page(fetch: Fetch[P], number: int, size: int, paging: Paging) -> P:
    """One page, paced; a throttled or failed call is retried with backoff (the same page)."""
    failures = 0
    while True:
        await paging.pacer.acquire()
        try:
            return await fetch(number, size)
        except EnsError as exc:
            disposition = classify(exc)
            # Expired credentials: their source has tried renewing them already.
            if disposition is Disposition.PERMANENT or isinstance(exc, CredentialsExpired):
                raise
            failures += 1
            if failures >= paging.tries:
                raise
            retry_after = exc.retry_after if isinstance(exc, ApiError) else None
            wait = paging.delay(failures, retry_after)
            if disposition is Disposition.THROTTLED:
                paging.pacer.backoff(wait)
            await paging.sleep(wait)


async def pages(fetch: Fetch[P], paging: Paging, *, page_size: int) -> AsyncIterator[P]:
    """Every page of a listing, until the distinct images seen cover ``TotalCount`` or a page
    comes back empty. Never by a page-size constant: a server may serve fewer images per page
    than asked (it says so in ``PageSize``), and later pages are asked at the size it served."""
    seen: set[str] = set()
    number, size = 1, page_size
    while number <= paging.max_pages:
        page = await fetch_page(fetch, number, size, paging)
        yield page
        if not page.images:
            return
        seen.update(image.image_id for image in page.images)
        if len(seen) >= page.total_count:
            return
        if number == 1:
            # Asked for more than it served: its own page size decides where page 2 starts.
            size = min(size, len(page.images), page.page_size or size)
        number += 1
