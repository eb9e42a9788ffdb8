"""Structured logging for people, on stderr; console or JSON lines, secrets scrubbed.

Every event is a stable dotted name (``ens_migrate.job.failed``) that scripts and tests can rely
on, with the sentence for people in the ``message`` field and the data in the others. The
console shows the sentence; JSON lines keep both.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

REDACTED = "***"


def _scrubber(secrets: tuple[str, ...]) -> structlog.types.Processor:
    def scrub(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in event.items():
            if isinstance(value, str) and any(s in value for s in secrets):
                for s in secrets:
                    value = value.replace(s, REDACTED)
                event[key] = value
        return event

    return scrub


def _sentence_first(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """For the console: the sentence in ``message`` is what people read; the name goes last."""
    message = event.pop("message", None)
    if message is not None:
        event["event"] = message
    return event


def configure_logging(*, fmt: str = "console", quiet: bool = False,
                      secrets: Iterable[str | None] = ()) -> None:
    """Configure structlog once per process (the only module-level state we keep)."""
    keep = tuple(s for s in secrets if s and len(s) >= 4)
    processors: list[structlog.types.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if keep:
        processors.append(_scrubber(keep))
    if fmt == "json":
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors += [_sentence_first, structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING if quiet else logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
