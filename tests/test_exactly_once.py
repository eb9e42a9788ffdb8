"""Exactly once under real timing (issue #12): against a simulator whose backend goes on working
after the client gave up and whose listings lag, no job gets two images while the backend is
faster than timeout + reconcile_horizon, and one slower than that is named by the run's own check.

Every test runs the real CLI against the simulator in its own process, over loopback sockets."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from pipeline.journal import records as r
from tests.run_helpers import (
    SimProcess,
    cli,
    cli_popen,
    imported_counts,
    journal_records,
    run_against,
    write_jobs,
)


def horizon_env(horizon: float) -> dict[str, str]:
    return {"ENS_MIGRATE_RECONCILE_HORIZON": str(horizon), "ENS_MIGRATE_RECONCILE_DELAY": "0"}


def twice(sim: SimProcess) -> dict[str, int]:
    """ImageName -> count, for names the simulator holds more than once."""
    return {name: n for name, n in imported_counts(sim.images()).items() if n > 1}


def run_fault(tmp_path: Path, jobs: int, *sim_args: str, timeout: float = 0.5,
              horizon: float = 2.0, seed: int = 3) -> tuple[SimProcess, int, str, Path]:
    jobs_file = tmp_path / "jobs.csv"
    names, _ = write_jobs(jobs_file, jobs)
    journal = tmp_path / "j.jsonl"
    sim = SimProcess("--seed", str(seed), "--available-after", "0", *sim_args)
    code, err = run_against(sim, jobs_file, journal, "--timeout", str(timeout),
                            env=horizon_env(horizon))
    assert set(imported_counts(sim.images())) == set(names), err
    return sim, code, err, journal


LONG = pytest.mark.long


@pytest.mark.parametrize("sim_args", [
    # D4: the backend creates the image 1.2 s after arrival, after the client's 0.5 s timeout.
    pytest.param(("--fault", "late_create=0.3", "--late-seconds", "1.2"), marks=LONG),
    # D5: the connection drops after creation and the image shows in listings 1 s later.
    pytest.param(("--fault", "drop_after=0.3", "--listing-lag", "1"), marks=LONG),
    # D6: created, then a JSON 503 ServiceUnavailable.
    pytest.param(("--fault", "late_503=0.3", "--late-seconds", "0.2"), marks=LONG),
    # D7: created, then SignatureNonceUsed (an earlier copy of the request got through).
    ("--fault", "nonce_replay=0.3"),
], ids=["D4-late-create", "D5-drop-after-listing-lag", "D6-late-503", "D7-nonce-replay"])
def test_no_second_image_below_the_horizon(tmp_path: Path, sim_args: tuple[str, ...]) -> None:
    """Every job ends with exactly one image and the run exits 0: an ambiguous attempt whose
    image is not listed yet waits out its horizon in the delayed queue before any resend."""
    sim, code, err, journal = run_fault(tmp_path, 12, *sim_args)
    with sim:
        faults = sum(sim.stats()["faults"].values())
        assert faults > 0
        assert twice(sim) == {}, err
        assert code == 0, err
    assert not [rec for rec in journal_records(journal) if rec["event"] == "job.duplicate"]


def test_a_backend_slower_than_the_horizon_is_named_by_the_runs_own_check(tmp_path: Path) -> None:
    """One request is created 2.5 s after arrival, beyond timeout (0.5 s) + horizon (1.5 s): the job
    is resent and gets a second image. The run's end check, one horizon after the last send,
    finds it: journaled as job.duplicate, counted in the JSON summary, exit 1."""
    jobs_file = tmp_path / "jobs.csv"
    write_jobs(jobs_file, 1)
    journal = tmp_path / "j.jsonl"
    summary = tmp_path / "summary.json"
    with SimProcess("--seed", "1", "--available-after", "0", "--fault", "late_create=1",
                    "--fault-limit", "1", "--late-seconds", "2.5") as sim:
        code, err = run_against(sim, jobs_file, journal, "--timeout", "0.5", "--summary", str(summary),
                                env=horizon_env(1.5))
        doubled = twice(sim)
        assert list(doubled.values()) == [2]
        dup = [rec for rec in journal_records(journal) if rec["event"] == "job.duplicate"]
        held = {img["ImageId"] for img in sim.images()}
        assert len(dup) == 1
        assert set(dup[0]["duplicates"]) | {dup[0]["image_id"]} == held
    assert code == 1, err
    assert json.loads(summary.read_text())["counts"]["duplicates"] == 1
    assert "DUPLICATE" in err


@pytest.mark.long
def test_inherited_doubt_waits_its_horizon_after_a_kill(tmp_path: Path) -> None:
    """D1: kill -9 while imports are still being processed (server latency 1.5-2 s), then an
    immediate rerun: the in-doubt jobs are looked up at once, found absent, and resent only after
    the horizon measured from their journaled attempt: their images show up meanwhile and are
    adopted, never created twice."""
    jobs_file = tmp_path / "jobs.csv"
    names, _ = write_jobs(jobs_file, 6)
    journal = tmp_path / "j.jsonl"
    with SimProcess("--seed", "2", "--available-after", "0", "--latency", "1.5-2") as sim:
        env = horizon_env(4)
        proc = cli_popen("run", str(jobs_file), "--endpoint", sim.url, "--journal", str(journal),
                         "--quiet", env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            attempts = journal.read_text().count('"job.attempt"') if journal.exists() else 0
            if attempts >= len(names):
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        assert sim.images() == [] or len(sim.images()) < len(names)
        code, err = run_against(sim, jobs_file, journal, env=env)
        assert code == 0, err
        assert set(imported_counts(sim.images())) == set(names)
        assert twice(sim) == {}, err


def test_imported_is_final_a_changed_row_is_reported_then_reimported_on_request(tmp_path: Path) -> None:
    """D2: an imported job whose row changed is never sent again by run; run, --dry-run and
    status report it "changed since imported" with its ImageId. --reimport-changed deletes the
    old image (journaled) and imports the new row: one image per name at every step."""
    jobs_file = tmp_path / "jobs.csv"
    names, _ = write_jobs(jobs_file, 3)
    journal = tmp_path / "j.jsonl"
    with SimProcess("--seed", "1", "--available-after", "0") as sim:
        code, err = run_against(sim, jobs_file, journal)
        assert code == 0, err
        first = {img["ImageName"]: img["ImageId"] for img in sim.images()}
        jobs_file.write_text(jobs_file.read_text().replace(" v1.qcow2", " v2.qcow2"))
        code, err = run_against(sim, jobs_file, journal)
        assert code == 0, err
        assert "changed since imported" in err
        assert {img["ImageName"]: img["ImageId"] for img in sim.images()} == first
        plan = cli("run", str(jobs_file), "--journal", str(journal), "--dry-run")
        assert f"changed since imported as {first[names[0]]}" in plan.stdout
        assert "changed since imported 3" in plan.stdout
        status = json.loads(cli("status", "--journal", str(journal), "--json").stdout)
        assert {c["job"]: c["image_id"] for c in status["changed_since_imported"]} == first
        code, err = run_against(sim, jobs_file, journal, "--reimport-changed")
        assert code == 0, err
        now = sim.images()
        assert imported_counts(now) == dict.fromkeys(names, 1)
        assert not {img["ImageId"] for img in now} & set(first.values())
        assert all("v2" in img["Params"]["OSSObject"] for img in now)
    events = [rec["event"] for rec in journal_records(journal)]
    assert events.count("job.delete") == 3
    assert events.count("job.deleted") == 3
    status = json.loads(cli("status", "--journal", str(journal), "--json").stdout)
    assert status["changed_since_imported"] == []


def test_a_failed_job_whose_row_changed_is_still_sent(tmp_path: Path) -> None:
    """A failed job is not final: its changed row is sent again without any flag."""
    jobs_file = tmp_path / "jobs.csv"
    names, _ = write_jobs(jobs_file, 1)
    journal = tmp_path / "j.jsonl"
    journal.write_bytes(r.encode(r.JOB_FAILED, names[0], {
        "fp": "0" * 32, "attempt": 1, "code": "NoPermission", "message": "denied", "status": 403}))
    with SimProcess("--seed", "1", "--available-after", "0") as sim:
        code, err = run_against(sim, jobs_file, journal)
        assert code == 0, err
        assert len(sim.images()) == 1
