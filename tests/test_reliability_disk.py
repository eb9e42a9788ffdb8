"""Disk trouble: a journal that cannot be created is refused before anything is sent (exit 2, no
traceback); a disk that fills mid-run stops the run with a clear message, leaves a readable journal,
and a rerun once space is freed finishes with every job imported exactly once.

Running as root, chmod cannot make a directory read-only for us, so the tests use a path under a
regular file, and small tmpfs mounts (read-only, or 64 KiB to fill); the tmpfs tests are skipped
where mounting is not allowed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.journal.reader import iter_records
from tests.run_helpers import FAST, SimProcess, cli, imported_counts, write_jobs

pytestmark = pytest.mark.timeout(120)

Mount = Callable[[str], Path]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    """``mount("size=64k")`` mounts a fresh tmpfs under tmp_path; all are unmounted afterwards."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mnt{len(mounted)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}); "
                        "run as root with CAP_SYS_ADMIN for the disk tests")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True, check=False)


def remount(point: Path, options: str) -> None:
    """Change a tmpfs's options in place (size, ro/rw)."""
    subprocess.run(["mount", "-o", f"remount,{options}", str(point)], check=True, capture_output=True)


def _run(sim: SimProcess, jobs: Path, journal: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("run", str(jobs), "--endpoint", sim.url, "--journal", str(journal), "--rate", "500",
               "--quiet", *extra, env=FAST)


def _error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("ens-migrate: error:")]


def test_a_journal_path_under_a_regular_file_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    """--journal FILE/j.jsonl: exit 2 saying FILE is not a directory; the simulator sees nothing."""
    write_jobs(tmp_path / "jobs.csv", 5)
    (tmp_path / "file.txt").write_text("not a directory\n", encoding="utf-8")
    with SimProcess() as sim:
        result = _run(sim, tmp_path / "jobs.csv", tmp_path / "file.txt" / "j.jsonl")
        assert sim.stats()["requests_total"] == 0
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [error] = _error_lines(result)
    assert "file.txt" in error
    assert "not a directory" in error
    assert "--journal" in error


def test_a_read_only_journal_directory_is_refused_before_anything_is_sent(tmp_path: Path,
                                                                          tmpfs: Mount) -> None:
    """A read-only file system under the journal: exit 2 naming the path and the problem, no
    request at all (not even the preflight probe)."""
    write_jobs(tmp_path / "jobs.csv", 5)
    point = tmpfs("size=64k")
    remount(point, "ro")
    with SimProcess() as sim:
        result = _run(sim, tmp_path / "jobs.csv", point / "j.jsonl")
        assert sim.stats()["requests_total"] == 0
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [error] = _error_lines(result)
    assert str(point / "j.jsonl") in error
    assert "Read-only file system" in error


def test_a_full_disk_before_the_run_is_refused_before_any_import(tmp_path: Path, tmpfs: Mount) -> None:
    """No space left for the lock or the journal: exit 2 "the disk is full", no ImportImage sent."""
    write_jobs(tmp_path / "jobs.csv", 5)
    point = tmpfs("size=64k")
    with pytest.raises(OSError, match="No space"):
        (point / "filler").write_bytes(b"\0" * (128 << 10))
    with SimProcess() as sim:
        result = _run(sim, tmp_path / "jobs.csv", point / "j.jsonl")
        assert "ImportImage" not in sim.stats()["requests"]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    [error] = _error_lines(result)
    assert "disk is full" in error


def test_a_disk_filling_mid_run_stops_cleanly_and_a_rerun_finishes_exactly_once(tmp_path: Path,
                                                                                 tmpfs: Mount) -> None:
    """The journal's 64 KiB disk fills part-way through 400 jobs: exit 2 with "the disk is full",
    no traceback, the journal still reads; after the disk grows, a rerun exits 0 and every job
    exists exactly once."""
    valid, _ = write_jobs(tmp_path / "jobs.csv", 400)
    point = tmpfs("size=64k")
    journal = point / "j.jsonl"
    with SimProcess("--latency", "0.0-0.01") as sim:
        full = _run(sim, tmp_path / "jobs.csv", journal)
        assert full.returncode == 2, full.stderr
        assert "Traceback" not in full.stderr
        [error] = _error_lines(full)
        assert "disk is full" in error
        assert str(journal) in error
        sent_before = sim.stats()["import_accepted"]
        assert 0 < sent_before < len(valid)
        assert sum(1 for _ in iter_records(journal)) > 0  # readable; a torn tail is ignored
        remount(point, "size=4m")
        again = _run(sim, tmp_path / "jobs.csv", journal)
        assert again.returncode == 0, again.stderr
        assert imported_counts(sim.images()) == dict.fromkeys(valid, 1)
        assert sim.stats()["duplicate_names"] == {}
