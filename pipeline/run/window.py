"""Parse ``--max-duration`` and ``--deadline`` into seconds from now (pure)."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipeline.errors import UsageError

_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DEADLINE = re.compile(r"^(\d{1,2}):(\d{2})(?:\s+(\S+))?$")


def parse_duration(text: str, flag: str = "--max-duration") -> float:
    """``90m``, ``4h``, ``1h30m``, ``45s`` or plain seconds -> seconds (> 0); ``flag`` is the
    option the text came from, named in the error."""
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        parts = _PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise UsageError(f"{flag} {text!r} is not a duration; use e.g. 90m, 4h, 1h30m or "
                             "300 (seconds)") from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"{flag} {text!r} must be a finite duration above zero")
    return seconds


def seconds_until(text: str, now: datetime) -> float:
    """``HH:MM`` (local time of ``now``) or ``HH:MM Zone/Name`` -> seconds until its next occurrence.

    ``now`` must be timezone-aware; a time already past today means tomorrow.
    """
    match = _DEADLINE.match(text.strip())
    if not match:
        raise UsageError(f"--deadline {text!r} is not a time; use HH:MM, optionally with a zone "
                         "such as '06:30 Asia/Shanghai'")
    hour, minute, zone = int(match[1]), int(match[2]), match[3]
    if hour > 23 or minute > 59:
        raise UsageError(f"--deadline {text!r}: hour must be 0-23 and minute 0-59")
    if zone:
        try:
            now = now.astimezone(ZoneInfo(zone))
        except (ZoneInfoNotFoundError, ValueError):
            raise UsageError(f"--deadline {text!r}: unknown time zone {zone!r}; use an IANA name "
                             "such as Asia/Shanghai or UTC") from None
    target = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if target <= now:
        target += timedelta(days=1)
    # Real seconds, not wall-clock: subtracting datetimes that share a tzinfo ignores a DST change.
    return target.timestamp() - now.timestamp()
