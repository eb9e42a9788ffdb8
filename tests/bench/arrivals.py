"""Watch a simulator's ImportImage arrivals from outside: first and last arrival, by polling."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx


class ArrivalWatch:
    """Polls ``/_sim/stats`` every ``interval`` seconds in a thread.

    The arrival times are known to half an interval: the first arrival is placed midway between
    the last poll that saw no new one and the first that saw some, the last one midway between the last
    poll that saw fewer than the final count and the first that saw it.
    """

    def __init__(self, url: str, *, interval: float = 0.1) -> None:
        self._url = f"{url}/_sim/stats"
        self._interval = interval
        self._samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self._stop.is_set():
                at = time.perf_counter()
                stats: dict[str, Any] = http.get(self._url).json()
                count = sum(stats["requests"].get("ImportImage", {}).values())
                self._samples.append((at, count))
                self._stop.wait(self._interval)

    def __enter__(self) -> ArrivalWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def span(self) -> float | None:
        """Seconds between the first and the last ImportImage arrival (None if under two polls apart)."""
        samples = self._samples
        if not samples or samples[-1][1] == samples[0][1]:
            return None
        initial, final = samples[0][1], samples[-1][1]
        first = next(i for i, (_, n) in enumerate(samples) if n > initial)
        last = next(i for i, (_, n) in enumerate(samples) if n == final)
        if first == 0 or last <= first:
            return None
        start = (samples[first - 1][0] + samples[first][0]) / 2
        end = (samples[last - 1][0] + samples[last][0]) / 2
        return end - start
