"""The source check before the first ImportImage: missing, empty, not qcow2, 403, unreachable, re-checked."""

from __future__ import annotations

import csv
import json
import socket
import time
from pathlib import Path

import pytest

from tests.oss_helpers import add_objects, object_line, oss_calls, write_objects
from tests.run_helpers import SimProcess, cli, import_requests, imported_counts, journal_records, run_against

pytestmark = pytest.mark.timeout(180)
BUCKET = "src-bkt"


def jobs_file(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        out = csv.DictWriter(handle, fieldnames=["ImageName", "OSSBucket", "OSSObject", "OSSRegion",
                                                 "DiskDeviceMapping"])
        out.writeheader()
        for row in rows:
            out.writerow(row)
    return path


def row(name: str, bucket: str = BUCKET, key: str | None = None) -> dict[str, str]:
    return {"ImageName": name, "OSSBucket": bucket, "OSSObject": key or f"images/{name}.qcow2",
            "OSSRegion": "cn-beijing"}


def failures(journal: Path) -> dict[str, str]:
    return {r["key"]: r["code"] for r in journal_records(journal) if r["event"] == "job.failed"}


def max_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def test_missing_objects_fail_unsent_within_the_oss_rate_and_are_checked_again(tmp_path: Path) -> None:
    """5% missing: those jobs fail Source.NotFound and no ImportImage goes for them; every other job
    is imported; the heads stay within --oss-rate; once uploaded, a plain rerun imports them."""
    names = [f"disk-{i:03d}" for i in range(40)]
    missing = {names[7], names[29]}
    objects = write_objects(tmp_path / "objects.jsonl",
                            [object_line(BUCKET, f"images/{n}.qcow2") for n in names if n not in missing])
    jobs = jobs_file(tmp_path / "jobs.csv", [row(n) for n in names])
    rate = 25
    with SimProcess("--oss-objects", str(objects)) as sim:
        code, err = run_against(sim, jobs, tmp_path / "j.jsonl", "--oss-endpoint", sim.url, "--oss-rate",
                                str(rate), "--rate", "200")
        assert code == 1, err
        assert failures(tmp_path / "j.jsonl") == dict.fromkeys(missing, "Source.NotFound")
        assert f"oss://{BUCKET}/images/{names[7]}.qcow2 (region cn-beijing) does not exist" in err
        assert set(imported_counts(sim.images())) == set(names) - missing
        assert import_requests(sim) == len(names) - len(missing)
        calls = oss_calls(sim.url)
        assert calls["Calls"] == {"HeadObject": len(names)}
        assert max_in_window(calls["Times"]) <= rate  # type: ignore[arg-type]
        assert not [r for r in journal_records(tmp_path / "j.jsonl")
                    if r["event"] == "job.attempt" and r["key"] in missing]

        add_objects(sim.url, [object_line(BUCKET, f"images/{n}.qcow2") for n in missing])
        code, err = run_against(sim, jobs, tmp_path / "j.jsonl", "--oss-endpoint", sim.url, "--rate", "200")
        assert code == 0, err
        assert imported_counts(sim.images()) == dict.fromkeys(names, 1)
        assert import_requests(sim) == len(names)


def test_empty_not_qcow2_and_disk_mapping_entries(tmp_path: Path) -> None:
    objects = write_objects(tmp_path / "objects.jsonl", [
        object_line(BUCKET, "images/ok.qcow2"), object_line(BUCKET, "images/empty.qcow2", 0),
        object_line(BUCKET, "images/raw.qcow2", first=b"\x00\x01\x02\x03garbage"),
        object_line(BUCKET, "images/system.qcow2")])
    mapping = json.dumps([{"OSSBucket": BUCKET, "OSSObject": "images/system.qcow2"},
                          {"OSSBucket": BUCKET, "OSSObject": "images/data gone.qcow2"}])
    jobs = jobs_file(tmp_path / "jobs.csv", [
        row("ok", key="images/ok.qcow2"), row("empty", key="images/empty.qcow2"),
        row("raw", key="images/raw.qcow2"),
        {"ImageName": "mapped", "OSSBucket": "", "OSSObject": "", "OSSRegion": "",
         "DiskDeviceMapping": mapping}])
    with SimProcess("--oss-objects", str(objects)) as sim:
        code, err = run_against(sim, jobs, tmp_path / "j.jsonl", "--oss-endpoint", sim.url, "--check-format")
        assert code == 1, err
        assert failures(tmp_path / "j.jsonl") == {"empty": "Source.Empty", "raw": "Source.NotQcow2",
                                                  "mapped": "Source.NotFound"}
        assert "data gone.qcow2" in err
        assert set(imported_counts(sim.images())) == {"ok"}


def test_a_bucket_that_does_not_exist_fails_its_jobs_unsent_naming_the_row_and_the_field(
        tmp_path: Path) -> None:
    """A bucket OSS answers NoSuchBucket for (a typo in OSSBucket): each job naming it, at the top
    level or in a DiskDeviceMapping entry, is recorded failed with Source.NoSuchBucket, its
    FILE:LINE and the field, and never sent; the bucket is asked about once, not once per job;
    the other jobs are imported. (It was Source.NotFound, "does not exist; upload it".)"""
    objects = write_objects(tmp_path / "objects.jsonl", [object_line(BUCKET, "images/ok.qcow2")])
    mapping = json.dumps([{"OSSBucket": BUCKET, "OSSObject": "images/ok.qcow2"},
                          {"OSSBucket": "tpyo-bkt", "OSSObject": "images/data.qcow2"}])
    jobs = jobs_file(tmp_path / "jobs.csv", [
        row("ok", key="images/ok.qcow2"), row("typo-1", bucket="tpyo-bkt"), row("typo-2", bucket="tpyo-bkt"),
        {"ImageName": "mapped", "OSSBucket": "", "OSSObject": "", "OSSRegion": "",
         "DiskDeviceMapping": mapping}])
    with SimProcess("--oss-objects", str(objects)) as sim:
        code, err = run_against(sim, jobs, tmp_path / "j.jsonl", "--oss-endpoint", sim.url,
                                "--concurrency", "1")  # one job after another: the heads are countable
        assert code == 1, err
        assert failures(tmp_path / "j.jsonl") == dict.fromkeys(["typo-1", "typo-2", "mapped"],
                                                               "Source.NoSuchBucket")
        assert set(imported_counts(sim.images())) == {"ok"}
        assert import_requests(sim) == 1
        # ok, typo-1 (tpyo-bkt: no such bucket), mapped's first entry; not typo-2 or mapped's second.
        assert oss_calls(sim.url)["Calls"] == {"HeadObject": 3}
        assert err.count("OSS says bucket tpyo-bkt does not exist") == 1
        messages = {r["key"]: r["message"] for r in journal_records(tmp_path / "j.jsonl")
                    if r["event"] == "job.failed"}
        assert messages["typo-1"].startswith("OSSBucket 'tpyo-bkt': no such bucket (OSS NoSuchBucket")
        assert messages["mapped"].startswith("DiskDeviceMapping entry 2 OSSBucket 'tpyo-bkt': no such bucket")
        assert f"{jobs}:3" in err
        result = cli("validate", str(jobs), "--check-sources", "--oss-endpoint", sim.url, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split(": ", 3)[:3] for line in lines] == [
        [f"{jobs}:3", "Source", "Source.NoSuchBucket"], [f"{jobs}:4", "Source", "Source.NoSuchBucket"],
        [f"{jobs}:5", "Source", "Source.NoSuchBucket"]]
    assert "OSSBucket 'tpyo-bkt': no such bucket" in lines[0]
    assert "fix OSSBucket" in lines[0]


def test_a_bucket_answering_403_is_warned_once_and_its_jobs_are_still_imported(tmp_path: Path) -> None:
    jobs = jobs_file(tmp_path / "jobs.csv", [row(f"locked-{i}", bucket="locked-bkt") for i in range(5)])
    objects = write_objects(tmp_path / "objects.jsonl", [object_line(BUCKET, "images/x.qcow2")])
    with SimProcess("--oss-objects", str(objects), "--oss-deny-bucket", "locked-bkt") as sim:
        code, err = run_against(sim, jobs, tmp_path / "j.jsonl", "--oss-endpoint", sim.url)
        assert code == 0, err
        assert err.count("grant oss:GetObject") == 1
        assert set(imported_counts(sim.images())) == {f"locked-{i}" for i in range(5)}


def test_unreachable_oss_warns_once_and_the_run_goes_on(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    jobs = jobs_file(tmp_path / "jobs.csv", [row(f"img-{i}") for i in range(4)])
    with SimProcess() as sim:
        code, err = run_against(sim, jobs, tmp_path / "j.jsonl", "--oss-endpoint", f"http://127.0.0.1:{dead}")
        assert code == 0, err
        assert err.count("could not be reached for source checks") == 1
        assert len(imported_counts(sim.images())) == 4


def test_no_check_against_a_loopback_endpoint_without_oss_endpoint_or_with_no_check_sources(
        tmp_path: Path) -> None:
    objects = write_objects(tmp_path / "objects.jsonl", [object_line(BUCKET, "images/a.qcow2")])
    jobs = jobs_file(tmp_path / "jobs.csv", [row("img-a", key="images/a.qcow2")])
    with SimProcess("--oss-objects", str(objects)) as sim:
        code, err = run_against(sim, jobs, tmp_path / "j.jsonl")
        assert code == 0, err
        code, err = run_against(sim, jobs, tmp_path / "j2.jsonl", "--oss-endpoint", sim.url,
                                "--no-check-sources")
        assert code == 0, err
        assert oss_calls(sim.url)["Calls"] == {}


def test_plan_sends_a_source_failure_again_without_retry_failed() -> None:
    from pipeline.journal.ledger import JobLedger, JobState
    from pipeline.run.plan import Action, plan

    failed = JobLedger(JobState.FAILED, fingerprint="fp", code="Source.NotFound")
    assert plan("fp", failed, retry_failed=False) is Action.SEND
    other = JobLedger(JobState.FAILED, fingerprint="fp", code="InvalidParameter")
    assert plan("fp", other, retry_failed=False) is Action.SKIP_FAILED


def test_validate_check_sources_reports_each_bad_object_and_imports_nothing(tmp_path: Path) -> None:
    objects = write_objects(tmp_path / "objects.jsonl", [object_line(BUCKET, "images/here.qcow2"),
                                                         object_line(BUCKET, "images/empty.qcow2", 0)])
    jobs = jobs_file(tmp_path / "jobs.csv", [row("here", key="images/here.qcow2"),
                                             row("gone", key="images/gone.qcow2"),
                                             row("empty", key="images/empty.qcow2")])
    with SimProcess("--oss-objects", str(objects)) as sim:
        result = cli("validate", str(jobs), "--check-sources", "--oss-endpoint", sim.url, cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        lines = result.stdout.splitlines()
        assert lines == [
            f"{jobs}:3: Source: Source.NotFound: oss://{BUCKET}/images/gone.qcow2 (region cn-beijing) "
            "does not exist; upload it or fix OSSBucket/OSSObject (the job is checked again on the next run)",
            f"{jobs}:4: Source: Source.Empty: oss://{BUCKET}/images/empty.qcow2 (region cn-beijing) is empty "
            "(0 bytes); upload the image again"]
        assert import_requests(sim) == 0


def test_simulate_serves_the_example_bucket_and_an_oss_source(tmp_path: Path) -> None:
    """`run --simulate oss://...` lists the simulator's OSS (jobs/example-bucket.jsonl) and imports it;
    a missing object in an example bucket is a Source.NotFound, never sent."""
    result = cli("run", "oss://k8s-images/nodes/", "--simulate", "--rate", "100", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "imported 2" in result.stderr
    assert (tmp_path / "runs" / "k8s-images-nodes.discovered.jsonl").is_file()
    jobs = jobs_file(tmp_path / "jobs.csv", [row("gone-one", bucket="k8s-images", key="nodes/none.qcow2")])
    result = cli("run", str(jobs), "--simulate", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Source.NotFound" in result.stderr


def test_the_simulator_fails_an_import_of_a_missing_object_server_side(tmp_path: Path) -> None:
    objects = write_objects(tmp_path / "objects.jsonl", [object_line(BUCKET, "images/here.qcow2")])
    jobs = jobs_file(tmp_path / "jobs.csv", [row("here", key="images/here.qcow2"),
                                             row("gone", key="images/gone.qcow2")])
    with SimProcess("--oss-objects", str(objects), "--available-after", "0.2") as sim:
        code, err = run_against(sim, jobs, tmp_path / "j.jsonl", "--wait", "--poll-interval", "0.1")
        assert code != 0, err
        status = {image["ImageName"]: image["Status"] for image in sim.images()}
        assert status == {"here": "Available", "gone": "Pack_failed"}


@pytest.mark.asyncio
async def test_pacer_keeps_rate_plus_one_grants_more_than_a_second_apart() -> None:
    """At --oss-rate N, grant N+1 comes at least 1.05 s after grant 1: jitter of up to 50 ms
    between grant and arrival cannot put N+1 calls in one second at OSS."""
    from pipeline.oss.check import Pacer

    rate = 200
    pacer = Pacer(rate)
    stamps = []
    for _ in range(rate + 1):
        await pacer.acquire()
        stamps.append(time.monotonic())
    assert stamps[-1] - stamps[0] >= 1.05 - 1e-3
