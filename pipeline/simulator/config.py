"""SimulatorConfig: every knob of the built-in ENS simulator, validated once at construction."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from pipeline.errors import ConfigError

DEV_ACCESS_KEY_ID = "SIMULATORKEYID0001"
"""The development AccessKeyId the simulator accepts when the environment sets none."""
DEV_ACCESS_KEY_SECRET = "simulator-dev-secret-not-for-production"
"""The development AccessKeySecret paired with ``DEV_ACCESS_KEY_ID``; not a real credential."""

ENV_ACCESS_KEY_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_ACCESS_KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_SECURITY_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"

FAULTS: tuple[str, ...] = ("error500", "error503", "drop_before", "drop_after", "slow_after", "garbage",
                           "late_create", "late_503", "nonce_replay")
"""Fault names, each injected into ImportImage with its own probability (one draw per request).
``late_create`` creates the image ``late_seconds`` after arrival, then answers (even when the client
hung up meanwhile); ``late_503`` creates it after ``late_seconds`` and answers a JSON 503;
``nonce_replay`` creates it and answers ``SignatureNonceUsed`` (an earlier copy got through)."""
DESCRIBE_FAULTS: tuple[str, ...] = ("error500", "error503", "drop_before", "throttle", "slow")
"""Faults of DescribeImages/DescribeSelfImages (one draw per call; ``throttle`` answers
``Throttling.User`` whatever the quota; ``slow`` holds the answer ``slow_seconds``, e.g. a start-up
probe that hangs)."""
DELETE_FAULTS: tuple[str, ...] = ("error503", "drop_before", "drop_after")
"""Faults of DeleteImage; ``drop_after`` deletes the image, then drops the connection (a lost answer)."""
MAX_PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class KeyPair:
    """The credentials the simulator accepts, and where they came from."""

    access_key_id: str
    access_key_secret: str
    security_token: str | None
    from_environment: bool


def key_pair_from_env(environ: Mapping[str, str] | None = None) -> KeyPair:
    """The pair from ``ALIBABA_CLOUD_ACCESS_KEY_ID``/``_SECRET`` when both are set, else the dev pair."""
    env = os.environ if environ is None else environ
    key_id, secret = env.get(ENV_ACCESS_KEY_ID, ""), env.get(ENV_ACCESS_KEY_SECRET, "")
    if key_id and secret:
        return KeyPair(key_id, secret, env.get(ENV_SECURITY_TOKEN) or None, from_environment=True)
    return KeyPair(DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET, None, from_environment=False)


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """How the simulator behaves; the defaults are a fast, reliable, unlimited endpoint."""

    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port; read the bound one from ``url``."""
    quota: int = 0
    """ImportImage requests per second per account; 0 = unlimited."""
    burst: int | None = None
    """None: exact sliding-window limiter, never more than ``quota`` accepted in any 1-second window.
    N: token bucket of capacity N refilled at ``quota``/s, which admits up to N + quota in a second."""
    latency: tuple[float, float] = (0.0, 0.0)
    """ImportImage service time, uniform between min and max seconds."""
    faults: Mapping[str, float] = field(default_factory=dict)
    """Fault name (see ``FAULTS``) to probability; the probabilities add up to at most 1."""
    seed: int | None = None
    """Seeds faults, latency and failures; None draws one (reported in the stats)."""
    slow_seconds: float = 5.0
    """How long ``slow_after`` holds the answer after creating the image, and the Describe fault
    ``slow`` holds its answer."""
    fault_limit: int | None = None
    """Inject at most this many ImportImage faults in all (None: no limit), for a test that needs
    exactly one slow request."""
    late_seconds: float = 3.0
    """How long ``late_create`` and ``late_503`` work on a request before the image exists."""
    listing_lag: float = 0.0
    """Seconds after its creation before an image shows in DescribeImages/DescribeSelfImages
    (``/_sim/images`` shows it at once)."""
    available_after: float = 1.0
    """Seconds an image stays ``Creating`` before its final status."""
    fail_fraction: float = 0.0
    """Fraction of images that end ``Pack_failed``/``Upload_failed`` instead of ``Available``."""
    deny_all: bool = False
    """Answer ``NoPermission`` to every ImportImage (a RAM policy missing the action)."""
    retry_after_ms: int | None = None
    """Send ``x-acs-retry-after`` with this many milliseconds on ``Throttling.User``."""
    clock_offset: float = 0.0
    """Seconds added to the server clock when checking ``x-acs-date`` (simulates skew)."""
    state_file: Path | None = None
    """Keep images in this JSON file across restarts (written atomically, debounced)."""
    access_key_id: str = DEV_ACCESS_KEY_ID
    access_key_secret: str = DEV_ACCESS_KEY_SECRET
    security_token: str | None = None
    """The STS token accepted in ``x-acs-security-token``; None refuses any token."""
    sts_ttl: float = 3600.0
    """Lifetime in seconds of the credentials STS AssumeRole / AssumeRoleWithOIDC hand out."""
    max_nonces: int = 200_000
    """Nonce memory bound; nonces are also pruned 30 minutes after use (twice the date window)."""
    persist_interval: float = 0.5
    """Debounce for ``state_file`` writes, in seconds."""
    describe_quota: int = 0
    """DescribeImages and DescribeSelfImages calls per second (each its own window); 0 = unlimited."""
    max_page_size: int = MAX_PAGE_SIZE
    """Images a Describe page holds at most, whatever PageSize asks (the answer's PageSize says so)."""
    describe_faults: Mapping[str, float] = field(default_factory=dict)
    """DESCRIBE_FAULTS name to probability."""
    delete_faults: Mapping[str, float] = field(default_factory=dict)
    """DELETE_FAULTS name to probability."""
    tls_dir: Path | None = None
    """Serve HTTPS with a fresh CA and 127.0.0.1/localhost certificate written here; None: plain HTTP."""
    new_connection_delay: float = 0.0
    """Seconds each new connection's TLS handshake is held (a WAN's TCP and TLS round trips, seen
    by the client: its connection is ready that much later); needs ``tls_dir``."""
    oss_objects: Path | None = None
    """JSON Lines of OSS objects (bucket, key, size, first_bytes) the simulated OSS serves; with
    objects loaded, an ImportImage naming a missing object fails server-side."""
    oss_denied_buckets: frozenset[str] = frozenset()
    """Buckets whose every OSS request answers 403 AccessDenied (a missing oss:GetObject grant)."""
    oss_open_buckets: bool = False
    """A bucket the objects file does not name holds every key (1 GiB, qcow2): ``run --simulate``
    serves the example bucket and keeps generated job lists working."""

    def __post_init__(self) -> None:
        faults = MappingProxyType(dict(self.faults))
        object.__setattr__(self, "faults", faults)
        object.__setattr__(self, "latency", (float(self.latency[0]), float(self.latency[1])))
        if self.state_file is not None:
            object.__setattr__(self, "state_file", Path(self.state_file))
        if self.tls_dir is not None:
            object.__setattr__(self, "tls_dir", Path(self.tls_dir))
        _check_faults("", faults, FAULTS)
        for label, names, table in (("describe", DESCRIBE_FAULTS, "describe_faults"),
                                    ("delete", DELETE_FAULTS, "delete_faults")):
            chosen = MappingProxyType(dict(getattr(self, table)))
            object.__setattr__(self, table, chosen)
            _check_faults(label, chosen, names)
        if self.fault_limit is not None and self.fault_limit < 0:
            raise ConfigError(f"fault_limit {self.fault_limit} must be >= 0")
        if self.describe_quota < 0:
            raise ConfigError(f"describe_quota {self.describe_quota} must be >= 0 (0 = unlimited)")
        if not 1 <= self.max_page_size <= MAX_PAGE_SIZE:
            raise ConfigError(f"max_page_size {self.max_page_size} must be between 1 and {MAX_PAGE_SIZE}")
        _check_fraction("fail_fraction", self.fail_fraction)
        low, high = self.latency
        if not 0.0 <= low <= high:
            raise ConfigError(f"latency {low:g}-{high:g} must be MIN-MAX seconds with 0 <= MIN <= MAX")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} must be between 0 and 65535")
        if self.quota < 0:
            raise ConfigError(f"quota {self.quota} must be >= 0 (0 = unlimited)")
        if self.burst is not None and self.burst < 1:
            raise ConfigError(f"burst {self.burst} must be >= 1")
        for label, value in (("slow_seconds", self.slow_seconds), ("available_after", self.available_after),
                             ("late_seconds", self.late_seconds), ("listing_lag", self.listing_lag),
                             ("persist_interval", self.persist_interval),
                             ("new_connection_delay", self.new_connection_delay)):
            if value < 0 or math.isnan(value):
                raise ConfigError(f"{label} {value:g} must be >= 0 seconds")
        if self.new_connection_delay > 0 and self.tls_dir is None:
            raise ConfigError("new_connection_delay needs TLS (--tls): only a TLS handshake can be "
                              "held where the client sees it; a plain TCP connect completes in the kernel")
        if self.retry_after_ms is not None and self.retry_after_ms < 0:
            raise ConfigError(f"retry_after_ms {self.retry_after_ms} must be >= 0")
        if not self.sts_ttl > 0:
            raise ConfigError(f"sts_ttl {self.sts_ttl:g} must be > 0 seconds")
        if self.max_nonces < 1:
            raise ConfigError(f"max_nonces {self.max_nonces} must be >= 1")
        if not self.access_key_id or not self.access_key_secret:
            raise ConfigError("the simulator needs a non-empty access key id and secret")

    def fault(self, name: str) -> float:
        """Probability of one fault (0 when not configured)."""
        return self.faults.get(name, 0.0)


def _check_faults(label: str, faults: Mapping[str, float], names: tuple[str, ...]) -> None:
    """Known names, each a probability, adding up to at most 1; ``label`` names the action."""
    kind = f"{label} fault" if label else "fault"
    unknown = sorted(set(faults) - set(names))
    if unknown:
        raise ConfigError(f"unknown simulator {kind} {unknown[0]!r}: choose from {', '.join(names)}")
    for name, p in faults.items():
        _check_fraction(f"{kind} {name}", p)
    if math.fsum(faults.values()) > 1.0 + 1e-9:
        raise ConfigError(f"{kind} probabilities add up to {math.fsum(faults.values()):g}; at most 1")


def _check_fraction(label: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{label} probability {value!r} must be between 0 and 1")


def parse_latency(text: str) -> tuple[float, float]:
    """``"0.01-0.05"`` or ``"0.02"`` (fixed) to ``(min, max)`` seconds."""
    low, sep, high = text.strip().partition("-")
    try:
        values = (float(low), float(high) if sep else float(low))
    except ValueError:
        raise ConfigError(f"latency {text!r} must be MIN-MAX seconds, e.g. 0.01-0.05") from None
    return values


def parse_fault(text: str, names: tuple[str, ...] = FAULTS) -> tuple[str, float]:
    """``"error500=0.1"`` to ``("error500", 0.1)``; NAME one of ``names``."""
    name, sep, prob = text.partition("=")
    name = name.strip()
    if not sep or name not in names:
        raise ConfigError(f"fault {text!r} must be NAME=P with NAME one of {', '.join(names)}")
    try:
        return name, float(prob)
    except ValueError:
        raise ConfigError(f"fault {text!r}: probability {prob!r} is not a number") from None
