"""SimulatorState: everything one simulator holds (images, counters, quota, nonces, RNG)."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pipeline.simulator.auth import Verifier
from pipeline.simulator.config import DELETE_FAULTS, DESCRIBE_FAULTS, SimulatorConfig
from pipeline.simulator.faults import ActionFaults, FaultPlan
from pipeline.simulator.images import Image, ImageStore, iso, new_image_id
from pipeline.simulator.oss import OssStore, load_objects, missing_source
from pipeline.simulator.oss_auth import OssVerifier
from pipeline.simulator.persist import Persister, load_into
from pipeline.simulator.quota import Limiter, make_limiter
from pipeline.simulator.stats import Stats
from pipeline.simulator.sts import StsIssuer


def new_request_id() -> str:
    """A fresh RequestId: an upper-case uuid4."""
    return str(uuid.uuid4()).upper()


class SimulatorState:
    """The simulator's memory; the app mutates it on one event loop, tests read it there."""

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**32)
        self.wall = wall
        """Wall clock (epoch seconds): creation times, lifecycle, x-acs-date checks."""
        self.monotonic = monotonic
        """Monotonic clock: quota and peaks."""
        self.sts = StsIssuer(config.sts_ttl, wall, gateway_offset=config.clock_offset)
        """STS on the same port: the temporary credentials it issued and their expiry."""
        self.verifier = Verifier(
            access_key_id=config.access_key_id, access_key_secret=config.access_key_secret,
            security_token=config.security_token, clock_offset=config.clock_offset,
            max_nonces=config.max_nonces, wall=wall, monotonic=monotonic, sts=self.sts,
        )
        self.limiter: Limiter = make_limiter(config.quota, config.burst)
        self.faults = FaultPlan(config, self.seed)
        self.describe_faults = ActionFaults(config.describe_faults, self.seed + 1, DESCRIBE_FAULTS)
        self.delete_faults = ActionFaults(config.delete_faults, self.seed + 2, DELETE_FAULTS)
        self.describe_limiters = self._describe_limiters()
        self.images = ImageStore()
        self.oss = OssStore(denied=frozenset(config.oss_denied_buckets), open_buckets=config.oss_open_buckets)
        """The simulated OSS (path style, same port): ``/<bucket>/<key>``."""
        if config.oss_objects is not None:
            self.oss.add(load_objects(config.oss_objects))

        def sts_pair(key_id: str) -> tuple[str, str | None] | None:
            issued = self.sts.lookup(key_id)
            return None if issued is None else (issued.secret, issued.token)

        self.oss_verifier = OssVerifier(config.access_key_id, config.access_key_secret,
                                        security_token=config.security_token, extra=sts_pair, wall=wall)
        self.stats = Stats()
        self.started_at = wall()
        self.persister: Persister | None = None
        if config.state_file is not None:
            load_into(self.images, config.state_file)
            self.persister = Persister(self.images, config.state_file, config.persist_interval)

    def create_image(self, params: Mapping[str, str], request_id: str, *, count: bool = True) -> Image:
        """Record an accepted ImportImage (``count``: in the ImportImage stats); it starts ``Creating``."""
        now = self.wall()
        image_id = new_image_id()
        while self.images.get(image_id) is not None:
            image_id = new_image_id()
        image = Image(
            image_id=image_id, name=params["ImageName"], params=tuple(params.items()),
            created_at=now, ready_at=now + self.config.available_after,
            # ENS reads the object after accepting the call: a missing one fails the image later.
            final_status=("Pack_failed" if missing_source(self.oss, params) else self.faults.final_status()),
            request_id=request_id,
        )
        self.images.add(image)
        if count:
            self.stats.accepted(image.name, self.monotonic())
        return image

    def reset(self) -> None:
        """Forget images, counters and the quota window (nonce memory stays: replays stay refused)."""
        self.images.clear()
        self.stats = Stats()
        self.limiter = make_limiter(self.config.quota, self.config.burst)
        self.describe_limiters = self._describe_limiters()

    def _describe_limiters(self) -> dict[str, Limiter]:
        return {action: make_limiter(self.config.describe_quota, None)
                for action in ("DescribeImages", "DescribeSelfImages")}

    def stats_snapshot(self) -> dict[str, Any]:
        """The JSON of ``/_sim/stats``."""
        snapshot = self.stats.snapshot()
        snapshot.update({
            "images": len(self.images),
            "seed": self.seed,
            "started_at": iso(self.started_at),
            "quota": self.config.quota,
            "describe_quota": self.config.describe_quota,
            "nonces_remembered": len(self.verifier.nonces),
            "sts_issued": self.sts.count,
        })
        return snapshot

    def images_snapshot(self, name: str | None = None) -> list[dict[str, Any]]:
        """The ``/_sim/images`` entries, oldest first; ``name`` keeps exact matches only."""
        now = self.wall()
        return [img.inspect(now) for img in self.images if name is None or img.name == name]
