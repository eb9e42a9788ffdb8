"""Structured logging for people, on stderr; console or JSON lines, secrets scrubbed.

Every event is a stable dotted name (``ens_migrate.job.failed``) that scripts and tests can rely
on, with the sentence for people in the ``message`` field and the data in the others. The
console shows the sentence; JSON lines keep both.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import structlog

REDACTED = "***"

_SECRETS: set[str] = set()
"""Every secret this process has held (keys, tokens, renewed ones too): scrubbed from each event."""


def register_secrets(*values: str | None) -> None:
    """Scrub these from every later log event (credential sources call it for each new secret)."""
    _SECRETS.update(v for v in values if v and len(v) >= 4)


def scrub_text(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` (for messages we print)."""
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _scrub(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    secrets = _SECRETS
    if secrets:
        for key, value in event.items():
            if isinstance(value, str) and any(s in value for s in secrets):
                event[key] = scrub_text(value)
    return event


def _sentence_first(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """For the console: the sentence in ``message`` is what people read; the name goes last."""
    message = event.pop("message", None)
    if message is not None:
        event["event"] = message
    return event


def colour_wanted() -> bool:
    """Colour only on a terminal, and never with ``NO_COLOR`` set (https://no-color.org)."""
    return sys.stderr.isatty() and not os.environ.get("NO_COLOR")


def say(fmt: str, event: str, message: str, *, level: str = "info", **fields: Any) -> None:
    """A line for people on stderr (the banner, the summary, an error, a warning before logging
    is set up): plain text, or with ``--log-format json`` one JSON object like every log event."""
    message = scrub_text(message)
    if fmt == "json":
        record = {"event": event, "message": message, **fields, "level": level,
                  "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
        sys.stderr.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    else:
        sys.stderr.write(message + "\n")
    sys.stderr.flush()


class _LibraryRecords(logging.Handler):
    """With JSON, the standard-library records of the packages under us (uvicorn serving
    ``--simulate``, asyncio) are JSON lines too; without it they would reach stderr as plain text
    through logging's last-resort handler."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": record.name}
            if record.exc_info:
                fields["exception"] = self._formatter.formatException(record.exc_info)
            say("json", "ens_migrate.library.log", record.getMessage(), level=record.levelname.lower(),
                **fields)
        except Exception:  # logging's own rule: a failing handler reports, never raises
            self.handleError(record)


def _route_library_records(fmt: str) -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _LibraryRecords)]:
        root.removeHandler(handler)
    if fmt == "json":
        root.addHandler(_LibraryRecords())


def configure_logging(*, fmt: str = "console", quiet: bool = False, verbose: bool = False,
                      secrets: Iterable[str | None] = ()) -> None:
    """Configure structlog once per process (the only module-level state we keep); ``verbose``
    shows debug events too (each attempt)."""
    register_secrets(*secrets)
    _route_library_records(fmt)
    processors: list[structlog.types.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    processors.append(_scrub)
    if fmt == "json":
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors += [_sentence_first, structlog.dev.ConsoleRenderer(colors=colour_wanted())]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
