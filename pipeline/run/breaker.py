"""The failure circuit breaker: stop a run that can only fail (revoked key, missing permission)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.ens.classify import is_systemic


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """When to trip: a permanent-failure share after a warm-up, or a streak of systemic codes."""

    warmup: int = 20
    max_failure_ratio: float = 0.5
    systemic_streak: int = 5


class CircuitBreaker:
    """Counts finished jobs; ``tripped`` names the reason once the run should abort (exit 4)."""

    def __init__(self, config: BreakerConfig | None = None) -> None:
        self.config = config or BreakerConfig()
        self.finished = 0
        self.failures = 0
        self.streak = 0
        self.streak_code: str | None = None
        self.tripped: str | None = None

    def record_success(self) -> None:
        """A job finished well."""
        self.finished += 1
        self.streak = 0

    def record_failure(self, code: str) -> str | None:
        """A job failed permanently with ``code``; return the trip reason if this trips it."""
        self.finished += 1
        self.failures += 1
        cfg = self.config
        if is_systemic(code):
            self.streak = self.streak + 1 if code == self.streak_code or self.streak_code is None else 1
            self.streak_code = code
        else:
            self.streak = 0
            self.streak_code = None
        if self.tripped is None:
            if self.streak >= cfg.systemic_streak:
                self.tripped = (f"{self.streak} jobs in a row failed with {code}, which no job can "
                                "get past (credentials or permissions); fix it and run again")
            elif self.finished >= cfg.warmup and self.failures / self.finished > cfg.max_failure_ratio:
                self.tripped = (f"{self.failures} of {self.finished} finished jobs failed "
                                f"permanently (over {cfg.max_failure_ratio:.0%}); check the report")
        return self.tripped
