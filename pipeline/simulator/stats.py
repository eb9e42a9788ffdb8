"""The simulator's counters: requests by action and outcome, quota, faults, peaks, in-flight."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from pipeline.simulator.quota import SlidingPeak

OK = "ok"


class Stats:
    """Counters read through ``/_sim/stats``; all updates happen on the event loop."""

    def __init__(self) -> None:
        self.requests: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.throttled = 0
        self.faults: Counter[str] = Counter()
        self.accepted_by_name: Counter[str] = Counter()
        self.import_arrivals = SlidingPeak()
        self.import_accepted = SlidingPeak()
        self.in_flight = 0
        self.in_flight_peak = 0
        self.import_in_flight = 0
        self.import_in_flight_peak = 0
        self.describe_arrivals = SlidingPeak()
        """DescribeImages and DescribeSelfImages calls together (a client's lookup rate)."""
        self.describe_throttled = 0

    def started(self, *, importing: bool, now: float) -> None:
        """A request arrived (``now``: monotonic seconds)."""
        self.in_flight += 1
        self.in_flight_peak = max(self.in_flight_peak, self.in_flight)
        if importing:
            self.import_arrivals.hit(now)
            self.import_in_flight += 1
            self.import_in_flight_peak = max(self.import_in_flight_peak, self.import_in_flight)

    def describe_arrived(self, now: float) -> None:
        """A DescribeImages/DescribeSelfImages call arrived."""
        self.describe_arrivals.hit(now)

    def finished(self, *, importing: bool) -> None:
        """A request left (answered, dropped or failed)."""
        self.in_flight -= 1
        if importing:
            self.import_in_flight -= 1

    def outcome(self, action: str, outcome: str) -> None:
        """Count one request's outcome: ``ok``, an error code, or ``dropped``."""
        self.requests[action][outcome] += 1

    def accepted(self, name: str, now: float) -> None:
        """An ImportImage created an image."""
        self.accepted_by_name[name] += 1
        self.import_accepted.hit(now)

    def snapshot(self) -> dict[str, Any]:
        """The JSON of ``/_sim/stats`` (without the server-level keys)."""
        return {
            "requests_total": sum(sum(c.values()) for c in self.requests.values()),
            "requests": {action: dict(counts) for action, counts in sorted(self.requests.items())},
            "throttled": self.throttled,
            "faults": dict(self.faults),
            "import_accepted": sum(self.accepted_by_name.values()),
            "accepted_by_name": dict(self.accepted_by_name),
            "duplicate_names": {n: c for n, c in self.accepted_by_name.items() if c > 1},
            "import_arrivals_peak_1s": self.import_arrivals.peak,
            "import_accepted_peak_1s": self.import_accepted.peak,
            "in_flight": self.in_flight,
            "in_flight_peak": self.in_flight_peak,
            "import_in_flight_peak": self.import_in_flight_peak,
            "describe_arrivals_peak_1s": self.describe_arrivals.peak,
            "describe_throttled": self.describe_throttled,
        }
