"""Alibaba Cloud credentials: the value, and the sources that hand out current ones (renewed in time).

The chain that picks a source is ``pipeline.ens.chain``; the STS and metadata calls behind the
role-based sources are ``pipeline.ens.sts`` and ``pipeline.ens.imds``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio
import structlog

from pipeline import log as logs
from pipeline.errors import CredentialsError, CredentialsExpired, EnsMigrateError

log = structlog.get_logger(__name__)

MAX_MARGIN = 900.0
"""Never sign with credentials that expire within 15 minutes..."""
MARGIN_FRACTION = 1 / 3
"""...or within a third of their lifetime, whichever is shorter."""
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0

REFRESHING_SOURCES_HINT = (
    "use a source that renews itself: RRSA (ALIBABA_CLOUD_ROLE_ARN, ALIBABA_CLOUD_OIDC_PROVIDER_ARN, "
    "ALIBABA_CLOUD_OIDC_TOKEN_FILE), the ECS instance RAM role, a RamRoleArn profile, or "
    "ALIBABA_CLOUD_CREDENTIALS_URI"
)


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """An AccessKey pair, optionally with an STS token; printing it never shows the secrets."""

    access_key_id: str
    access_key_secret: str
    security_token: str | None = None
    source: str = "static"
    """Where the chain found them, for messages: ``environment``, ``cli profile 'x' (path)``..."""
    expiration: float | None = None
    """POSIX seconds when they stop working; None for long-lived keys (and a static token)."""
    obtained: float | None = None
    """POSIX seconds when they were handed out (their lifetime starts here)."""

    @property
    def masked_id(self) -> str:
        """The AccessKeyId with its middle hidden: ``LTAI****abcd``."""
        key = self.access_key_id
        return f"{key[:4]}****{key[-4:]}" if len(key) >= 12 else "****"

    def margin(self) -> float:
        """Seconds before ``expiration`` after which these are never used to sign."""
        if self.expiration is None:
            return 0.0
        lifetime = self.expiration - (self.obtained if self.obtained is not None else self.expiration)
        return min(MAX_MARGIN, max(lifetime, 0.0) * MARGIN_FRACTION)

    def usable(self, now: float) -> bool:
        """True while these may still sign a request."""
        return self.expiration is None or now < self.expiration - self.margin()

    def due(self, now: float) -> bool:
        """True once a renewal should be tried (one margin before the last usable moment), so a
        failed renewal can be retried while these still work."""
        return self.expiration is not None and now >= self.expiration - 2 * self.margin()

    def __repr__(self) -> str:
        token = ", security_token=****" if self.security_token else ""
        return f"Credentials(access_key_id={self.masked_id!r}{token}, source={self.source!r})"

    __str__ = __repr__


class CredentialSource(Protocol):
    """Hands out the credentials to sign the next request with."""

    @property
    def description(self) -> str:
        """Where the credentials come from, for messages."""
        ...

    async def get(self) -> Credentials:
        """Current credentials, renewed first when they are about to expire; raise
        ``CredentialsExpired`` when none can be had."""
        ...

    async def renew(self, stale: Credentials, code: str) -> Credentials:
        """ENS refused ``stale`` as stale (``code``): fresh ones, or ``CredentialsExpired``."""
        ...


class StaticCredentials:
    """Credentials that never change: an AccessKey pair, or a static STS token (which cannot be
    renewed: when ENS calls it expired, the run stops resumably)."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        logs.register_secrets(credentials.access_key_secret, credentials.security_token)

    @property
    def description(self) -> str:
        return self.credentials.source

    async def get(self) -> Credentials:
        return self.credentials

    async def renew(self, stale: Credentials, code: str) -> Credentials:
        raise CredentialsExpired(
            f"ENS refused the STS token from {self.credentials.source} as expired ({code}); a static "
            "token cannot be renewed",
            fix=f"set a fresh ALIBABA_CLOUD_SECURITY_TOKEN (with its key pair), or {REFRESHING_SOURCES_HINT}")


Fetch = Callable[[], Awaitable[Credentials]]


class RefreshingCredentials:
    """Credentials from STS, the metadata service or a credentials URI, renewed before they expire.

    One renewal at a time however many workers wait; a failed renewal while the current
    credentials still work is logged and retried with backoff.
    """

    def __init__(self, fetch: Fetch, *, description: str, first: Credentials | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._fetch = fetch
        self._description = description
        self._clock = clock
        self._current = first
        self._lock: anyio.Lock | None = None
        self._next_try = 0.0
        self._backoff = FIRST_BACKOFF
        self.refreshes = 0
        """Successful fetches after the first."""
        if first is not None:
            logs.register_secrets(first.access_key_secret, first.security_token)

    @property
    def description(self) -> str:
        return self._description

    async def load(self) -> Credentials:
        """The first fetch (the chain calls it to see whether this source works). It runs in the
        chain's own event loop, so the lock is made afresh in the run's."""
        try:
            return await self._refresh(force=True)
        finally:
            self._lock = None

    async def get(self) -> Credentials:
        current = self._current
        now = self._clock()
        if current is not None and not current.due(now):
            return current
        return await self._refresh(force=False)

    async def renew(self, stale: Credentials, code: str) -> Credentials:
        if self._current is not None and self._current is not stale \
                and self._current.usable(self._clock()):
            return self._current
        log.info("ens_migrate.credentials.stale", message="ENS called the credentials stale; renewing",
                 code=code, source=self._description, key_id=stale.masked_id)
        return await self._refresh(force=True, stale=stale)

    async def _refresh(self, *, force: bool, stale: Credentials | None = None) -> Credentials:
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            now = self._clock()
            current = self._current
            if current is not None and current is not stale:
                if not current.due(now):
                    return current  # another worker renewed them while this one waited
                if not force and now < self._next_try and current.usable(now):
                    return current  # backing off after a failed renewal
            try:
                fresh = await self._fetch()
            except EnsMigrateError as exc:
                return self._failed(exc, now, stale)
            logs.register_secrets(fresh.access_key_secret, fresh.security_token)
            if self._current is not None:
                self.refreshes += 1
                log.info("ens_migrate.credentials.renewed", message="credentials renewed",
                         source=self._description, key_id=fresh.masked_id,
                         expires_in=None if fresh.expiration is None else round(fresh.expiration - now))
            self._current = fresh
            self._backoff = FIRST_BACKOFF
            self._next_try = 0.0
            if not fresh.usable(self._clock()):
                raise CredentialsExpired(
                    f"{self._description} handed out credentials that expire too soon to be used "
                    f"(in {0 if fresh.expiration is None else fresh.expiration - now:.0f} s)",
                    fix="check the local clock and the role's session duration")
            return fresh

    def _failed(self, exc: EnsMigrateError, now: float, stale: Credentials | None) -> Credentials:
        current = self._current
        if current is None:
            raise CredentialsError(f"{self._description}: {exc}") from exc
        if current is not stale and current.usable(now):
            self._next_try = now + self._backoff
            log.warning("ens_migrate.credentials.renew_failed",
                        message="renewing the credentials failed; the current ones still work, "
                                f"trying again in {self._backoff:.0f} s",
                        source=self._description, error=str(exc))
            self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            return current
        raise CredentialsExpired(
            f"the credentials from {self._description} expired and could not be renewed ({exc})",
            fix="fix that source (role, token file, metadata service, STS endpoint)") from exc


def resolve_credentials(env: Mapping[str, str], home: Path) -> Credentials:
    """The chain's current credentials, fetched once (for callers that need one value)."""
    from pipeline.ens.chain import resolve_source

    async def first() -> Credentials:
        source = await resolve_source(env, home)
        return await source.get()

    return anyio.run(first)
