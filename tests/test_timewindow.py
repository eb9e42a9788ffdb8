"""``--max-duration`` and ``--deadline``: parsed into seconds, pure, with clear usage errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from pipeline.errors import UsageError
from pipeline.run.window import parse_duration, seconds_until


@pytest.mark.parametrize(("text", "seconds"), [
    ("90m", 5400.0),
    ("4h", 14400.0),
    ("1h30m", 5400.0),
    ("45s", 45.0),
    ("1d", 86400.0),
    ("1.5h", 5400.0),
    ("300", 300.0),
    ("0.5", 0.5),
    (" 2H ", 7200.0),
    ("1h0m30s", 3630.0),
])
def test_parse_duration(text: str, seconds: float) -> None:
    """Units s/m/h/d, combined, decimal, or plain seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [
    "", "abc", "90x", "h", "1h 30m", "m90", "-5", "0", "0s", "0h0m", "1h-30m", "nan", "inf",
])
def test_parse_duration_rejects(text: str) -> None:
    """Anything else, zero, negative or not a finite number is a usage error naming the flag."""
    with pytest.raises(UsageError, match="--max-duration"):
        parse_duration(text)


SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(("text", "now", "seconds"), [
    ("06:30", datetime(2026, 5, 1, 5, 0, tzinfo=SHANGHAI), 5400.0),
    ("6:30", datetime(2026, 5, 1, 5, 0, tzinfo=SHANGHAI), 5400.0),
    ("06:30", datetime(2026, 5, 1, 7, 0, tzinfo=SHANGHAI), 23.5 * 3600),   # past: tomorrow
    ("06:30", datetime(2026, 5, 1, 6, 30, tzinfo=SHANGHAI), 24 * 3600.0),  # now exactly: tomorrow
    ("00:00", datetime(2026, 12, 31, 23, 59, 30, tzinfo=UTC), 30.0),      # over a year's end
    ("06:30 Asia/Shanghai", datetime(2026, 5, 1, 21, 0, tzinfo=UTC), 5400.0),  # 05:00 there
    ("06:30 UTC", datetime(2026, 5, 1, 5, 0, tzinfo=SHANGHAI), 9.5 * 3600),  # 21:00 UTC before
    ("23:59 Europe/Berlin", datetime(2026, 5, 1, 23, 0, tzinfo=ZoneInfo("Europe/Berlin")), 3540.0),
    ("06:30", datetime(2026, 5, 1, 5, 0, tzinfo=timezone(timedelta(hours=8))), 5400.0),
])
def test_seconds_until(text: str, now: datetime, seconds: float) -> None:
    """HH:MM in ``now``'s zone or the named zone; a time already past today means tomorrow."""
    assert seconds_until(text, now) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "now", "seconds"), [
    # New York springs forward at 02:00 on 2026-03-08: 01:00 EST -> 03:30 EDT is 1.5 h, not 2.5 h.
    ("03:30 America/New_York", datetime(2026, 3, 8, 6, 0, tzinfo=UTC), 1.5 * 3600),
    # ... and falls back at 02:00 on 2026-11-01: 00:30 EDT -> 06:00 EST is 6.5 h, not 5.5 h.
    ("06:00 America/New_York", datetime(2026, 11, 1, 4, 30, tzinfo=UTC), 6.5 * 3600),
])
def test_seconds_until_across_dst_change(text: str, now: datetime, seconds: float) -> None:
    """A nightly window that spans a daylight-saving change counts real elapsed seconds."""
    assert seconds_until(text, now) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "match"), [
    ("6", "not a time"),
    ("06:3", "not a time"),
    ("06-30", "not a time"),
    ("tomorrow", "not a time"),
    ("24:00", "hour must be 0-23"),
    ("12:60", "minute 0-59"),
    ("06:30 Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
    ("06:30 ../etc/passwd", "unknown time zone"),
    ("06:30 Asia/Shanghai extra", "not a time"),
])
def test_seconds_until_rejects(text: str, match: str) -> None:
    """Bad times and unknown zones are usage errors naming ``--deadline`` and the problem."""
    with pytest.raises(UsageError, match="--deadline") as info:
        seconds_until(text, datetime(2026, 5, 1, 5, 0, tzinfo=UTC))
    assert match in str(info.value)
