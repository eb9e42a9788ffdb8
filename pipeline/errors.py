"""Our exception tree; every failure a user can meet is one of these.

::

    EnsMigrateError                      exit_code
    ├── UsageError                       2   a flag or argument we refuse
    │   └── ConfigError                  2   config file, environment, settings
    │       └── CredentialsError         2   no usable credentials
    ├── JobListError                     65  the job list file cannot be read as a job list
    ├── JournalError                     2   the journal cannot be opened, read or written
    │   └── JournalLocked                75  another run holds the journal lock
    └── EnsError                             a call to ENS did not succeed
        ├── ApiError                         ENS answered with an error body (Code, Message, ...)
        ├── BadResponse                      an answer we cannot parse (HTML from a proxy, ...)
        ├── TransportError                   no answer; ``delivery`` says if it may have arrived
        └── CredentialsExpired           3   the credentials ran out and none fresh can be had

    StoppedAtStartup (KeyboardInterrupt) 3   SIGINT/SIGTERM during run's start-up

httpx exceptions are translated into ``TransportError`` in one place (``client.py``).
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """The exit codes of every command (design.md §3): the one table the help text, the summary's
    ``exit_meaning`` and the status report are generated from."""

    meaning: str
    """A few words, for the summary and status."""
    detail: str
    """The line of ``--help``."""

    def __new__(cls, value: int, meaning: str, detail: str) -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        member.detail = detail
        return member

    DONE = (0, "every job in the list is done",
            "every job in the list is done (imported now or in an earlier run)")
    FAILED = (1, "the run finished, but some jobs failed",
              "the run finished, but some jobs failed (the report says which and why)")
    USAGE = (2, "usage or configuration error",
             "usage or configuration error: bad flag, unreadable config, no credentials")
    STOPPED = (3, "stopped early and resumable",
               "stopped early and resumable: deadline reached, drained after SIGINT/SIGTERM, or the "
               "credentials expired (none fresh to be had)")
    BREAKER = (4, "aborted by the failure circuit breaker", "aborted by the failure circuit breaker")
    JOB_LIST = (65, "the job list file is unreadable",
                "the job list file itself is unreadable (encoding, header, JSON syntax), or an "
                "oss:// source's bucket does not exist")
    LOCKED = (75, "another run holds the journal lock", "another run holds the journal lock")
    ABORTED = (130, "hard abort (second signal)", "hard abort (second signal)")

    @classmethod
    def meaning_of(cls, code: int | None) -> str:
        """The meaning of any code, ``unknown`` for one not in the table (or None)."""
        member = cls._value2member_map_.get(code) if code is not None else None
        return member.meaning if isinstance(member, ExitCode) else "unknown"

    @classmethod
    def help_text(cls) -> str:
        """The ``Exit codes:`` block of ``--help`` (``\\b`` keeps click from rewrapping it)."""
        return "\b\nExit codes:\n" + "".join(f"  {m.value:<3} {m.detail}\n" for m in cls)


class EnsMigrateError(Exception):
    """Base of every error ens-migrate raises on purpose."""

    exit_code: int = ExitCode.FAILED


class UsageError(EnsMigrateError):
    """A command-line argument or option we refuse."""

    exit_code = ExitCode.USAGE


class ConfigError(UsageError):
    """A setting from a config file, the environment or a flag is invalid."""


class CredentialsError(ConfigError):
    """No usable Alibaba Cloud credentials were found."""

    def __init__(self, message: str, *, tried: tuple[str, ...] = ()) -> None:
        self.tried = tried
        """What the credentials chain looked at, in order, and why each was passed over."""
        super().__init__(message)


class JobListError(EnsMigrateError):
    """The job list file itself is unreadable: encoding, header, JSON syntax."""

    exit_code = ExitCode.JOB_LIST

    def __init__(self, path: str, line: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


class StoppedAtStartup(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived before any import was sent (config, journal fold, credentials).

    A ``KeyboardInterrupt``: the signal handler raises it at whatever line the main thread is on,
    and a handler of ``EnsMigrateError`` or ``Exception`` there (a credentials source, say) must
    not take it for its own failure. Inside an event loop that line can be one of asyncio's own
    callbacks, which log and drop any other exception (the run then went on and exited 2, 3 times
    in 30 under load); asyncio lets ``KeyboardInterrupt`` through, out of the loop. ``run``
    catches it.
    """

    exit_code = ExitCode.STOPPED

    def __init__(self, signal_name: str) -> None:
        self.signal_name = signal_name
        super().__init__(f"stopped by {signal_name} during start-up, before any import was sent; "
                         "run again to resume")


def startup_stop(exc: BaseException) -> StoppedAtStartup | None:
    """The ``StoppedAtStartup`` that ``exc`` is or holds: raised by a signal handler inside a task
    group (the credentials chain, an OSS listing), it arrives wrapped in an exception group."""
    if isinstance(exc, StoppedAtStartup):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = startup_stop(inner)
            if found is not None:
                return found
    return None


class JournalError(EnsMigrateError):
    """The journal cannot be opened, read or written."""

    exit_code = ExitCode.USAGE


class JournalLocked(JournalError):
    """Another run holds the journal's lock."""

    exit_code = ExitCode.LOCKED

    def __init__(self, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        holder = f"process {pid}" if pid else "another process"
        super().__init__(
            f"{path} is locked by {holder}: another run is using this journal; "
            "wait for it to finish or pass a different --journal"
        )


class Delivery(enum.Enum):
    """Whether a failed request may have reached ENS."""

    NOT_SENT = "not_sent"
    """The request never left (connect refused, DNS): safe to resend."""
    MAYBE_SENT = "maybe_sent"
    """The request may have been processed (read timeout, reset after send): reconcile first."""
    ANSWERED = "answered"
    """ENS answered; the answer says what happened."""


class EnsError(EnsMigrateError):
    """A call to ENS did not succeed.

    Every subclass sets ``code`` (ENS's Code, or ``HTTP<status>`` / ``Transport.*`` where ENS gave
    none), ``status`` (the HTTP status, None without an answer) and ``request_id`` (None when ENS
    named none), so callers read them without ``getattr``.
    """

    delivery: Delivery = Delivery.ANSWERED
    code: str
    status: int | None = None
    request_id: str | None = None


class ApiError(EnsError):
    """ENS answered with an error body: ``{RequestId, HostId, Code, Message, Recommend}``."""

    status: int

    def __init__(
        self,
        *,
        code: str,
        message: str,
        status: int,
        request_id: str | None = None,
        host_id: str | None = None,
        recommend: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id
        self.host_id = host_id
        self.recommend = recommend
        self.retry_after = retry_after
        """Seconds to wait before retrying, from ``x-acs-retry-after`` (sent in milliseconds)."""
        super().__init__(f"{code} (HTTP {status}): {message} [RequestId {request_id or '-'}]")


class BadResponse(EnsError):
    """An answer that is not a JSON ENS body, e.g. an HTML 502 page from a proxy."""

    def __init__(self, *, status: int, body_start: str, delivery: Delivery) -> None:
        self.status = status
        self.request_id = None
        self.body_start = body_start
        self.delivery = delivery
        self.code = f"HTTP{status}"
        super().__init__(f"unparseable HTTP {status} answer: {body_start[:120]!r}")


class TransportError(EnsError):
    """No answer from ENS; ``delivery`` says whether the request may have arrived."""

    def __init__(self, detail: str, *, delivery: Delivery) -> None:
        self.detail = detail
        self.delivery = delivery
        self.code = "Transport.NotSent" if delivery is Delivery.NOT_SENT else "Transport.MaybeSent"
        super().__init__(detail)


class CredentialsExpired(EnsError):
    """The credentials expired (or ENS called them stale) and no fresh ones can be had: the run
    (or the wait) stops resumably, the request was not processed (refused at the gateway or never
    sent). ``problem`` says what happened and names the source; ``fix`` what to renew."""

    exit_code = ExitCode.STOPPED
    code = "Credentials.Expired"
    delivery = Delivery.NOT_SENT

    def __init__(self, problem: str, *, fix: str) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}: {fix}; then run again to resume (pending jobs are not failed)")

    def then_run(self, command: str) -> str:
        """The message for another command than ``run``: renew, then run ``command`` again."""
        return f"{self.problem}: {self.fix}; then run `{command}` again"
