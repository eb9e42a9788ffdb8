"""The real CLI in a subprocess against the simulator in another process, over loopback sockets."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from tests.run_helpers import (
    FAST,
    SimProcess,
    cli,
    cli_popen,
    import_requests,
    imported_counts,
    journal_records,
    run_against,
    wait_for_line,
    write_jobs,
)

pytestmark = pytest.mark.timeout(180)

def test_clean_run_imports_every_job_once_and_a_rerun_sends_nothing(tmp_path: Path) -> None:
    """A clean run imports each job exactly once (exit 0); running it again sends no ImportImage."""
    valid, _ = write_jobs(tmp_path / "jobs.csv", 60)
    with SimProcess() as sim:
        code, err = run_against(sim, tmp_path / "jobs.csv", tmp_path / "j.jsonl", "--rate", "200")
        assert code == 0, err
        assert imported_counts(sim.images()) == dict.fromkeys(valid, 1)
        sent = import_requests(sim)
        code, err = run_against(sim, tmp_path / "jobs.csv", tmp_path / "j.jsonl", "--rate", "200")
        assert code == 0, err
        assert import_requests(sim) == sent
        assert "already done 60" in err


def test_the_quota_is_held_in_every_second(tmp_path: Path) -> None:
    """At --rate equal to the account quota the simulator never sees more than the quota in any
    1-second window, throttles nothing, and the run uses at least 90% of the quota."""
    valid, _ = write_jobs(tmp_path / "jobs.csv", 160)
    with SimProcess("--quota", "40", "--latency", "0.02-0.1") as sim:
        started = time.monotonic()
        code, err = run_against(sim, tmp_path / "jobs.csv", tmp_path / "j.jsonl", "--rate", "40")
        elapsed = time.monotonic() - started
        stats = sim.stats()
    assert code == 0, err
    assert stats["import_arrivals_peak_1s"] <= 40
    assert stats["throttled"] == 0
    assert stats["import_accepted"] == len(valid)
    # 160 jobs at 40/s: 4 s of sending; allow process start-up and shutdown on top.
    assert elapsed < 160 / 40 / 0.9 + 3.0


# error500 and drop_before take the paths error503 (ambiguous 5xx) and drop_after's retry already
# take in the default run; all six run with -m long.
@pytest.mark.parametrize("fault", [pytest.param("error500", marks=pytest.mark.long), "error503",
                                   pytest.param("drop_before", marks=pytest.mark.long), "drop_after",
                                   "slow_after", "garbage"])
def test_each_fault_alone_ends_with_every_job_imported_exactly_once(tmp_path: Path, fault: str) -> None:
    """Whatever the fault, each valid job ends imported exactly once (the simulator's record)."""
    valid, _ = write_jobs(tmp_path / "jobs.csv", 50)
    with SimProcess("--fault", f"{fault}=0.25", "--seed", "3", "--slow-seconds", "1.0") as sim:
        code, err = run_against(sim, tmp_path / "jobs.csv", tmp_path / "j.jsonl", "--rate", "200",
                         "--timeout", "0.4")
        assert code == 0, err
        assert imported_counts(sim.images()) == dict.fromkeys(valid, 1)
        assert sim.stats()["faults"].get(fault, 0) > 0


@pytest.mark.long  # 17 s; each fault alone, and the reliability suite's mixed faults, stay in the default run
def test_mixed_faults_and_invalid_rows(tmp_path: Path) -> None:
    """Mixed faults plus 10% invalid rows: valid jobs imported once, invalid ones never sent, exit 1,
    and the journal names every invalid row."""
    valid, invalid = write_jobs(tmp_path / "jobs.csv", 120, invalid_every=10)
    faults = [a for f in ("error500", "error503", "drop_before", "drop_after", "slow_after", "garbage")
              for a in ("--fault", f"{f}=0.05")]
    with SimProcess(*faults, "--seed", "5", "--slow-seconds", "1.0", "--latency", "0.0-0.02") as sim:
        code, err = run_against(sim, tmp_path / "jobs.csv", tmp_path / "j.jsonl", "--rate", "300",
                         "--timeout", "0.4")
        counts = imported_counts(sim.images())
    assert code == 1, err
    assert {n: counts.get(n) for n in valid} == dict.fromkeys(valid, 1)
    assert not set(counts) - set(valid)
    invalid_records = [r for r in journal_records(tmp_path / "j.jsonl") if r["event"] == "job.invalid"]
    assert len(invalid_records) == len(invalid)


def _widened_config(tmp_path: Path) -> Path:
    config = tmp_path / "wide.toml"
    config.write_text('[rules]\nPlatform = ["centos", "ubuntu", "freebsd"]\n', encoding="utf-8")
    return config


def _jobs_with_rejected_platform(tmp_path: Path, good: int, rejected: int) -> Path:
    path = tmp_path / "jobs.csv"
    lines = ["ImageName,OSSBucket,OSSObject,Platform"]
    lines += [f"good-{i},b,o/{i}.qcow2,centos" for i in range(good)]
    lines += [f"bsd-{i},b,o/{i}.qcow2,freebsd" for i in range(rejected)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_permanent_errors_are_sent_once_and_retry_failed_sends_them_again(tmp_path: Path) -> None:
    """ENS refusing a value we let through (a widened rule) fails the job after one request; a rerun
    skips it; --retry-failed sends each failed job exactly once more."""
    jobs = _jobs_with_rejected_platform(tmp_path, good=10, rejected=5)
    config = _widened_config(tmp_path)
    journal = tmp_path / "j.jsonl"
    with SimProcess() as sim:
        code, err = run_against(sim, jobs, journal, "--config", str(config), "--rate", "200")
        assert code == 1, err
        assert import_requests(sim) == 15
        failed = [r for r in journal_records(journal) if r["event"] == "job.failed"]
        assert {r["code"] for r in failed} == {"InvalidParameter.Platform"}
        assert all(r["request_id"] for r in failed)
        code, err = run_against(sim, jobs, journal, "--config", str(config), "--rate", "200")
        assert code == 1, err
        assert import_requests(sim) == 15
        code, err = run_against(sim, jobs, journal, "--config", str(config), "--rate", "200",
                                "--retry-failed")
        assert code == 1, err
        assert import_requests(sim) == 20


def test_dry_run_sends_nothing_and_prints_the_plan(tmp_path: Path) -> None:
    """--dry-run reads list and journal, prints how many would be imported, sends nothing."""
    write_jobs(tmp_path / "jobs.csv", 30, invalid_every=10)
    with SimProcess() as sim:
        result = cli("run", str(tmp_path / "jobs.csv"), "--endpoint", sim.url, "--journal",
                     str(tmp_path / "j.jsonl"), "--dry-run")
        assert result.returncode == 0, result.stderr
        assert "import 27" in result.stdout
        assert "invalid 3" in result.stdout
        assert sim.stats()["requests_total"] == 0


def test_a_torn_last_journal_line_is_ignored_and_truncated(tmp_path: Path) -> None:
    """A crash mid-write leaves half a line; the next run ignores it, truncates it, warns on
    stderr (its log) with the number of bytes it cut off, and resumes."""
    valid, _ = write_jobs(tmp_path / "jobs.csv", 20)
    journal = tmp_path / "j.jsonl"
    torn = b'{"v":1,"ts":"2026-11-27T00:00:00.000Z","event":"job.att'
    with SimProcess() as sim:
        code, err = run_against(sim, tmp_path / "jobs.csv", journal, "--rate", "200")
        assert code == 0, err
        with journal.open("ab") as handle:
            handle.write(torn)
        code, err = run_against(sim, tmp_path / "jobs.csv", journal, "--rate", "200")
        assert code == 0, err
        assert f"dropped {len(torn)} bytes" in err
        assert journal.read_bytes().endswith(b"\n")
        assert b'"event":"job.att"' not in journal.read_bytes()
        assert imported_counts(sim.images()) == dict.fromkeys(valid, 1)


def test_a_second_run_on_the_same_journal_exits_75_naming_the_holder(tmp_path: Path) -> None:
    """While one run holds the journal, another exits 75 and names the holder's PID."""
    write_jobs(tmp_path / "jobs.csv", 400)
    journal = tmp_path / "j.jsonl"
    with SimProcess("--latency", "0.05-0.1") as sim:
        first = cli_popen("run", str(tmp_path / "jobs.csv"), "--endpoint", sim.url, "--journal",
                          str(journal), "--rate", "20", "--quiet")
        try:
            assert wait_for_line(journal, '"event":"job.imported"', time.monotonic() + 30)
            second = cli("run", str(tmp_path / "jobs.csv"), "--endpoint", sim.url, "--journal",
                         str(journal))
            assert second.returncode == 75, second.stderr
            assert str(first.pid) in second.stderr
        finally:
            first.kill()
            first.communicate()


def test_kill_9_at_random_moments_then_a_final_run_imports_each_job_exactly_once(tmp_path: Path) -> None:
    """kill -9 the run five times at random moments (faults on), then finish: exactly once."""
    valid, _ = write_jobs(tmp_path / "jobs.csv", 250)
    journal = tmp_path / "j.jsonl"
    rng = random.Random(11)
    with SimProcess("--latency", "0.01-0.08", "--fault", "drop_after=0.05", "--fault", "slow_after=0.05",
                    "--slow-seconds", "0.8", "--seed", "9") as sim:
        for _ in range(5):
            proc = cli_popen("run", str(tmp_path / "jobs.csv"), "--endpoint", sim.url, "--journal",
                             str(journal), "--rate", "150", "--timeout", "0.4", "--quiet", env=FAST)
            deadline = time.monotonic() + 30
            assert wait_for_line(journal, '"event":"run.start"', deadline)
            time.sleep(rng.uniform(0.1, 0.8))  # a random kill moment, not a wait for a result
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            journal_records(journal)  # every complete line still parses
        code, err = run_against(sim, tmp_path / "jobs.csv", journal, "--rate", "300", "--timeout", "0.4")
        assert code == 0, err
        assert imported_counts(sim.images()) == dict.fromkeys(valid, 1)


def test_simulate_runs_the_example_list_with_no_cloud_account(tmp_path: Path) -> None:
    """`run jobs/example.csv --simulate` works with no credentials at all."""
    example = Path(__file__).resolve().parent.parent / "jobs" / "example.csv"
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ""}
    result = cli("run", str(example), "--simulate", "--rate", "100", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "SIMULATION" in result.stderr
    assert (tmp_path / "runs" / "example.simulated.journal.jsonl").exists()
