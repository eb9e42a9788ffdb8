"""Lookups that finish (issue #12, D8 and L1-L3): every page of every listing paced by
``lookup_rate``, a throttled page retried and resumed, paging until TotalCount is covered.

The unit tests page a scripted listing on virtual time; the end-to-end ones run the CLI against
the simulator in a subprocess, seeded through its state file, and read its Describe peak."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import load_config
from pipeline.ens.listing import Paging, pages
from pipeline.errors import ApiError
from pipeline.joblist.job import Job
from pipeline.joblist.rules import job_rules
from pipeline.joblist.validate import iter_rows
from pipeline.journal import records as r
from pipeline.run.limits import Lookup
from tests.fakes import FakeClock
from tests.run_helpers import (
    SimProcess,
    import_requests,
    imported_counts,
    journal_records,
    run_against,
    write_jobs,
)

# --- unit: paging and pacing --------------------------------------------------------------------


@dataclass(frozen=True)
class Img:
    image_id: str


@dataclass(frozen=True)
class Pg:
    images: tuple[Img, ...]
    total_count: int
    page_size: int


class Listing:
    """A server holding ``total`` images that serves at most ``serves`` per page."""

    def __init__(self, total: int, serves: int, throttle: dict[int, int] | None = None) -> None:
        self.total, self.serves = total, serves
        self.throttle = dict(throttle or {})
        self.calls: list[tuple[int, int]] = []

    async def fetch(self, number: int, size: int) -> Pg:
        self.calls.append((number, size))
        if self.throttle.get(number):
            self.throttle[number] -= 1
            raise ApiError(code="Throttling.User", message="flow control", status=400)
        size = min(size, self.serves)
        start = (number - 1) * size
        ids = tuple(Img(f"m-{i}") for i in range(start, min(self.total, start + size)))
        return Pg(ids, self.total, size)


class CountingPacer:
    def __init__(self) -> None:
        self.grants = 0
        self.backoffs: list[float] = []

    async def acquire(self) -> None:
        self.grants += 1

    def backoff(self, seconds: float) -> None:
        self.backoffs.append(seconds)


async def collect(listing: Listing, paging: Paging) -> list[str]:
    return [img.image_id async for page in pages(listing.fetch, paging, page_size=50)
            for img in page.images]


@pytest.mark.asyncio
async def test_a_server_serving_fewer_than_asked_is_paged_to_the_end() -> None:
    """D8: asked for 50, served 10 (PageSize 10): the listing goes on until TotalCount is covered,
    asking the later pages at the size served, instead of stopping after one page."""
    listing = Listing(total=35, serves=10)
    ids = await collect(listing, Paging(pacer=CountingPacer()))
    assert ids == [f"m-{i}" for i in range(35)]
    assert listing.calls == [(1, 50), (2, 10), (3, 10), (4, 10)]


@pytest.mark.asyncio
async def test_a_throttled_page_is_retried_and_the_listing_resumes_there() -> None:
    """L1: page 3 throttled twice is asked again (page 3, not page 1), every try paced, and the
    throttle holds the shared pacer."""
    clock = FakeClock()
    pacer = CountingPacer()
    listing = Listing(total=200, serves=50, throttle={3: 2})
    ids = await collect(listing, Paging(pacer=pacer, sleep=clock.sleep, rand=lambda: 0.5))
    assert len(set(ids)) == 200
    assert [n for n, _ in listing.calls] == [1, 2, 3, 3, 3, 4]
    assert pacer.grants == 6
    assert len(pacer.backoffs) == 2


@pytest.mark.asyncio
async def test_a_page_throttled_past_its_tries_raises() -> None:
    """A page that keeps failing ends the listing with the error (the caller decides), after
    ``tries`` attempts of that page."""
    listing = Listing(total=200, serves=50, throttle={2: 99})
    clock = FakeClock()
    with pytest.raises(ApiError):
        await collect(listing, Paging(pacer=CountingPacer(), sleep=clock.sleep, tries=3))
    assert [n for n, _ in listing.calls] == [1, 2, 2, 2]


@pytest.mark.asyncio
async def test_an_empty_page_ends_the_listing() -> None:
    """A page with no images ends it even when TotalCount promised more (the listing shrank)."""
    listing = Listing(total=20, serves=10)
    listing.total = 20

    async def shrinking(number: int, size: int) -> Pg:
        page = await listing.fetch(number, size)
        return Pg(page.images if number == 1 else (), 99, page.page_size)

    got = [page async for page in pages(shrinking, Paging(), page_size=50)]
    assert len(got) == 2


@pytest.mark.asyncio
async def test_the_lookup_pacer_never_grants_more_than_the_rate_in_any_second() -> None:
    """Lookup(10): 45 grants in a row, never more than 10 in any 1-second window."""
    clock = FakeClock()
    lookup = Lookup(10.0, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(45):
        await lookup.acquire()
        times.append(clock())
    assert max(sum(1 for t in times if s - 1.0 < t <= s) for s in times) <= 10
    assert times[-1] - times[0] < 5.0


@pytest.mark.asyncio
async def test_a_backoff_holds_every_lookup() -> None:
    """After ``backoff(2)`` the next grant waits two seconds."""
    clock = FakeClock()
    lookup = Lookup(10.0, clock=clock, sleep=clock.sleep)
    await lookup.acquire()
    start = clock()
    lookup.backoff(2.0)
    await lookup.acquire()
    assert clock() - start >= 2.0


# --- end to end, against the simulator -----------------------------------------------------------


def jobs_of(path: Path) -> list[Job]:
    return [row for row in iter_rows([str(path)], job_rules(load_config(None))) if isinstance(row, Job)]


def image(image_id: str, name: str, created: float) -> dict[str, Any]:
    return {"ImageId": image_id, "ImageName": name, "Params": {"ImageName": name}, "CreatedAt": created,
            "ReadyAt": created, "FinalStatus": "Available", "RequestId": "SEED"}


def seed_state(path: Path, images: list[dict[str, Any]]) -> None:
    """A simulator state file holding ``images`` in this order (the listing shows newest first)."""
    path.write_text(json.dumps({"version": 1, "images": images}), encoding="utf-8")


def in_doubt(journal: Path, jobs: list[Job]) -> None:
    """A journal whose last record for each job is an attempt with no outcome, an hour old."""
    with journal.open("wb") as out:
        for job in jobs:
            out.write(r.encode(r.JOB_ATTEMPT, job.name, {
                "fp": job.fingerprint, "attempt": 1, "source": job.source, "line": job.line,
                "params": job.query()}, ts="2026-01-01T00:00:00.000Z"))


def states(journal: Path) -> Counter[str]:
    last: dict[str, str] = {}
    for rec in journal_records(journal):
        if rec.get("key") and rec["event"] in (r.JOB_IMPORTED, r.JOB_RECONCILED, r.JOB_SKIPPED,
                                               r.JOB_FAILED, r.JOB_ATTEMPT, r.JOB_ERROR):
            last[rec["key"]] = rec["event"]
    return Counter(last.values())


def doubt_setup(tmp_path: Path, *, jobs: int, decoys: int) -> tuple[Path, Path, Path, list[str]]:
    """``jobs`` jobs in doubt whose images exist (the oldest in the account), under ``decoys``
    newer images whose names contain every job's name (the fuzzy filter matches them all)."""
    csv_path, journal, state = tmp_path / "jobs.csv", tmp_path / "j.jsonl", tmp_path / "sim.json"
    names, _ = write_jobs(csv_path, jobs)
    in_doubt(journal, jobs_of(csv_path))
    real = [image(f"m-real{i:020d}", name, 1.0e9 + i) for i, name in enumerate(names)]
    joined = "-".join(names)
    fakes = [image(f"m-decoy{i:019d}", f"{joined}-copy-{i}", 1.1e9 + i) for i in range(decoys)]
    seed_state(state, real + fakes)
    return csv_path, journal, state, names


def test_a_lookup_pages_past_a_short_server_page_and_adopts_instead_of_resending(tmp_path: Path) -> None:
    """D8: the server serves 10 images per page; the in-doubt job's image is on page 3 (20 newer
    images contain its name). The lookup finds it: adopted, nothing resent, one image."""
    jobs, journal, state, (name,) = doubt_setup(tmp_path, jobs=1, decoys=20)
    with SimProcess("--state", str(state), "--max-page-size", "10", "--available-after", "0") as sim:
        code, err = run_against(sim, jobs, journal)
        assert code == 0, err
        assert import_requests(sim) == 0
        assert imported_counts(sim.images())[name] == 1
    assert states(journal) == Counter({r.JOB_RECONCILED: 1})


def lookups_finish(tmp_path: Path, *, jobs: int, decoys: int, quota: int) -> None:
    csv_path, journal, state, names = doubt_setup(tmp_path, jobs=jobs, decoys=decoys)
    with SimProcess("--state", str(state), "--describe-quota", str(quota), "--available-after", "0") as sim:
        code, err = run_against(sim, csv_path, journal, env={"ENS_MIGRATE_LOOKUP_RATE": str(quota)})
        stats = sim.stats()
        assert code == 0, err
        assert import_requests(sim) == 0
        counts = imported_counts(sim.images())
    assert states(journal) == Counter({r.JOB_RECONCILED: jobs})
    assert all(counts[name] == 1 for name in names)
    assert stats["describe_arrivals_peak_1s"] <= quota, stats
    assert stats["describe_throttled"] == 0, stats


def test_lookups_through_many_fuzzy_matches_finish_within_the_lookup_rate(tmp_path: Path) -> None:
    """L1 (short): 3 jobs in doubt, 300 images whose names contain theirs (7 pages a lookup), a
    20/s Describe quota: every job ends reconciled in the run, and the simulator's busiest
    second of Describe calls stays at or under lookup_rate (the probe included). The long
    variant below is the measured one, at 10/s."""
    lookups_finish(tmp_path, jobs=3, decoys=300, quota=20)


@pytest.mark.long
@pytest.mark.timeout(300)
def test_lookups_through_5000_fuzzy_matches_finish_within_the_lookup_rate(tmp_path: Path) -> None:
    """L1 as measured: 5,000 images whose names contain every job's name, 10/s quota. About
    300 paced Describe calls to reconcile, and as many again for the run's end-of-run check."""
    lookups_finish(tmp_path, jobs=3, decoys=5000, quota=10)


def test_skip_existing_under_a_describe_quota_lists_and_imports(tmp_path: Path) -> None:
    """L2: --skip-existing lists a 300-image account under a 5/s Describe quota: paced and
    resumed, no exit 1; the new jobs are imported and the existing one skipped."""
    csv_path, journal, state = tmp_path / "jobs.csv", tmp_path / "j.jsonl", tmp_path / "sim.json"
    names, _ = write_jobs(csv_path, 5)
    others = [image(f"m-other{i:019d}", f"other-{i}", 1.0e9 + i) for i in range(300)]
    seed_state(state, [image("m-existing000000000000000", names[0], 1.2e9), *others])
    with SimProcess("--state", str(state), "--describe-quota", "5", "--available-after", "0") as sim:
        code, err = run_against(sim, csv_path, journal, "--skip-existing",
                                env={"ENS_MIGRATE_LOOKUP_RATE": "5"})
        stats = sim.stats()
        assert code == 0, err
        assert import_requests(sim) == 4
    assert stats["describe_arrivals_peak_1s"] <= 5, stats
    assert states(journal) == Counter({r.JOB_IMPORTED: 4, r.JOB_SKIPPED: 1})


def test_wait_with_more_than_ten_images_under_a_describe_quota_ends_available(tmp_path: Path) -> None:
    """L3: --wait with 12 images, 40 more in the account, 10 images a page and a 5/s Describe
    quota: every poll is paced and complete (6 pages), so the images are seen Available (exit 0),
    not reported still importing until the wait timeout (exit 3)."""
    csv_path, journal, state = tmp_path / "jobs.csv", tmp_path / "j.jsonl", tmp_path / "sim.json"
    write_jobs(csv_path, 12)
    seed_state(state, [image(f"m-other{i:019d}", f"other-{i}", 1.0e9 + i) for i in range(40)])
    with SimProcess("--state", str(state), "--describe-quota", "5", "--max-page-size", "10",
                    "--available-after", "0.5") as sim:
        code, err = run_against(sim, csv_path, journal, "--wait", "--poll-interval", "0.5",
                                "--wait-timeout", "60s", env={"ENS_MIGRATE_LOOKUP_RATE": "5"})
        stats = sim.stats()
    assert code == 0, err
    assert "12 Available" in err
    assert stats["describe_arrivals_peak_1s"] <= 5, stats
