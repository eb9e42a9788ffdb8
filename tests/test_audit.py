"""``ens-migrate audit``: the account's images held against the journal, job by job; orphans of
a journaled image deleted on request, each deletion journaled (issue #12)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from pipeline.journal import records as r
from pipeline.journal.ledger import JobState
from pipeline.report.audit import Seen, Verdict, judge
from tests.fakes import ledger_of
from tests.run_helpers import (
    SimProcess,
    cli,
    cli_forked,
    imported_counts,
    journal_records,
    run_against,
    write_jobs,
)

A, B, C = Seen("m-a", "Available"), Seen("m-b", "Available"), Seen("m-c", "Creating")


@pytest.mark.parametrize(("state", "image_id", "image_status", "named", "verdict", "others"), [
    (JobState.IMPORTED, "m-a", None, [A], Verdict.OK, ()),
    (JobState.IMPORTED, "m-a", None, [], Verdict.MISSING, ()),
    (JobState.IMPORTED, "m-a", None, [B], Verdict.MISSING, (B,)),
    (JobState.IMPORTED, "m-a", None, [B, A, C], Verdict.DUPLICATES, (B, C)),
    (JobState.IMPORTED, "m-a", None, [Seen("m-a", "Pack_failed")], Verdict.FAILED, ()),
    (JobState.FAILED, "m-a", "Upload_failed", [Seen("m-a", "Upload_failed")], Verdict.FAILED, ()),
    (JobState.FAILED, None, None, [B], Verdict.UNKNOWN, (B,)),
    (JobState.IN_DOUBT, None, None, [B], Verdict.UNKNOWN, (B,)),
    (JobState.PENDING, None, None, [], Verdict.NOT_IMPORTED, ()),
    (JobState.FAILED, None, None, [], Verdict.NOT_IMPORTED, ()),
])
def test_each_job_gets_its_verdict(state: JobState, image_id: str | None, image_status: str | None,
                                   named: list[Seen], verdict: Verdict, others: tuple[Seen, ...]) -> None:
    """The verdict table: what the journal holds against the images carrying the job's name."""
    job = judge("web", state, image_id, image_status, named)
    assert (job.verdict, job.others) == (verdict, others)
    assert job.verdict.wrong is (verdict not in (Verdict.OK, Verdict.NOT_IMPORTED))


def test_only_orphans_no_longer_creating_of_an_existing_journaled_image_are_deletable() -> None:
    """--delete-duplicates deletes orphans of a journaled image that exists, never one still
    Creating, and nothing for a job whose own image is missing."""
    assert judge("web", JobState.IMPORTED, "m-a", None, [A, B, C]).deletable == (B,)
    assert judge("web", JobState.IMPORTED, "m-x", None, [B]).deletable == ()
    assert judge("web", JobState.FAILED, None, None, [B]).deletable == ()


def audit(sim: SimProcess, journal: Path, *args: str) -> tuple[int, str, str]:
    """``audit`` forked (its exit codes from the real process: test_audit_usage_errors_exit_2)."""
    result = cli_forked("audit", "--journal", str(journal), "--endpoint", sim.url, *args)
    return result.returncode, result.stdout, result.stderr


def inject(sim: SimProcess, name: str) -> str:
    """Create an image for ``name`` directly in the simulator, behind the tool's back."""
    answer = httpx.post(f"{sim.url}/_sim/images", params={"ImageName": name}, timeout=10)
    answer.raise_for_status()
    return str(answer.json()["ImageId"])


def test_audit_names_an_injected_duplicate_and_delete_duplicates_leaves_one_image(tmp_path: Path) -> None:
    """A clean run audits clean (exit 0). An extra image for a journaled name: exit 1, the
    orphan and the journaled ImageId named, in lines and in --json; --dry-run deletes nothing;
    --delete-duplicates deletes the orphan (journaled), leaves one image per job, exit 0."""
    jobs, journal = tmp_path / "jobs.csv", tmp_path / "j.jsonl"
    names, _ = write_jobs(jobs, 3)
    with SimProcess("--available-after", "0") as sim:
        code, err = run_against(sim, jobs, journal)
        assert code == 0, err
        code, out, err = audit(sim, journal)
        assert code == 0, out + err
        assert "ok 3" in out
        held = ledger_of(journal).jobs[names[1]].image_id
        orphan = inject(sim, names[1])

        code, out, err = audit(sim, journal)
        assert code == 1, out + err
        assert orphan in out
        assert held is not None
        assert held in out
        code, out, _ = audit(sim, journal, "--json")
        document = json.loads(out)
        assert code == 1
        assert document["counts"]["duplicates"] == 1
        (problem,) = document["problems"]
        assert (problem["job"], problem["journal_image_id"]) == (names[1], held)
        assert [o["image_id"] for o in problem["others"]] == [orphan]

        code, out, err = audit(sim, journal, "--delete-duplicates", "--dry-run")
        assert code == 1, out + err
        assert f"would delete {orphan}" in out
        assert imported_counts(sim.images())[names[1]] == 2

        code, out, err = audit(sim, journal, "--delete-duplicates")
        assert code == 0, out + err
        assert f"deleted {orphan}" in out
        assert imported_counts(sim.images()) == dict.fromkeys(names, 1)
    events = [(rec["event"], rec.get("image_id")) for rec in journal_records(journal)
              if rec["key"] == names[1] and rec["event"].startswith("job.delete")]
    assert events == [(r.JOB_DELETE, orphan), (r.JOB_DELETED, orphan)]
    job = ledger_of(journal).jobs[names[1]]
    assert (job.state, job.image_id) == (JobState.IMPORTED, held)


def test_audit_reports_a_missing_image_and_one_unknown_to_the_journal(tmp_path: Path) -> None:
    """An imported job whose image someone deleted is missing; an image carrying the name of a
    job the journal never imported is unknown to the journal; both exit 1."""
    jobs, journal = tmp_path / "jobs.csv", tmp_path / "j.jsonl"
    names, _ = write_jobs(jobs, 2)
    with SimProcess("--available-after", "0") as sim:
        code, err = run_against(sim, jobs, journal)
        assert code == 0, err
        gone = ledger_of(journal).jobs[names[0]].image_id
        with journal.open("ab") as out:  # the second job's outcome never reached the journal
            out.write(r.encode(r.JOB_ATTEMPT, names[1], {"fp": "x", "attempt": 9}))
        httpx.post(f"{sim.url}/_sim/reset", timeout=10).raise_for_status()
        stray = inject(sim, names[1])
        code, out, err = audit(sim, journal, "--json")
    assert code == 1, out + err
    verdicts = {p["job"]: p for p in json.loads(out)["problems"]}
    assert verdicts[names[0]]["verdict"] == "missing"
    assert verdicts[names[0]]["journal_image_id"] == gone
    assert verdicts[names[1]]["verdict"] == "unknown"
    assert [o["image_id"] for o in verdicts[names[1]]["others"]] == [stray]


def test_audit_usage_errors_exit_2(tmp_path: Path) -> None:
    """No such journal, or --dry-run without --delete-duplicates: exit 2."""
    assert cli("audit", "--journal", str(tmp_path / "none.jsonl"), "--simulate").returncode == 2
    (tmp_path / "j.jsonl").write_text("")
    assert cli("audit", "--journal", str(tmp_path / "j.jsonl"), "--dry-run").returncode == 2


def test_audit_simulate_reads_the_simulator_state_beside_the_journal(tmp_path: Path) -> None:
    """run --simulate, then audit --simulate: the same simulated account, clean (exit 0)."""
    jobs, journal = tmp_path / "jobs.csv", tmp_path / "j.jsonl"
    write_jobs(jobs, 2)
    ran = cli("run", str(jobs), "--simulate", "--journal", str(journal), "--quiet")
    assert ran.returncode == 0, ran.stderr
    audited = cli("audit", "--journal", str(journal), "--simulate", "--json")
    assert audited.returncode == 0, audited.stdout + audited.stderr
    assert json.loads(audited.stdout)["counts"]["ok"] == 2
