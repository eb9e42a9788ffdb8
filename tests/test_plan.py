"""The planner: what to do with each job given its journal state (``--resume``/``--resume-failed``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.joblist.validate import InvalidRow, Problem
from pipeline.journal.ledger import JobLedger, JobState, Ledger
from pipeline.run.plan import Action, PlanOptions, plan, plan_rows
from tests.fakes import make_job
from tests.run_helpers import SimProcess, cli, import_requests, run_against, write_jobs

FP = "f" * 32
OTHER = "0" * 32

S, A = JobState, Action

# (state, fingerprint changed, retry_failed, expected)
TABLE: list[tuple[JobState, bool, bool, Action]] = [
    (S.PENDING, False, False, A.SEND),
    (S.PENDING, False, True, A.SEND),
    (S.PENDING, True, False, A.SEND),
    (S.PENDING, True, True, A.SEND),
    (S.IN_DOUBT, False, False, A.RECONCILE),
    (S.IN_DOUBT, False, True, A.RECONCILE),
    (S.IN_DOUBT, True, False, A.RECONCILE),
    (S.IN_DOUBT, True, True, A.RECONCILE),
    (S.IMPORTED, False, False, A.SKIP_DONE),
    (S.IMPORTED, False, True, A.SKIP_DONE),
    # Imported is final: a changed row is reported, not sent (D2).
    (S.IMPORTED, True, False, A.SKIP_CHANGED),
    (S.IMPORTED, True, True, A.SKIP_CHANGED),
    (S.FAILED, False, False, A.SKIP_FAILED),
    (S.FAILED, False, True, A.SEND),
    (S.FAILED, True, False, A.SEND),
    (S.FAILED, True, True, A.SEND),
    (S.INVALID, False, False, A.SEND),
    (S.INVALID, False, True, A.SEND),
    (S.INVALID, True, False, A.SEND),
    (S.INVALID, True, True, A.SEND),
]


@pytest.mark.parametrize(("state", "changed", "retry_failed", "expected"), TABLE)
def test_plan_table(state: JobState, changed: bool, retry_failed: bool, expected: Action) -> None:
    """Final outcomes are kept unless the parameters changed (or --retry-failed for failures);
    an attempt with no outcome is always reconciled first; anything else is sent."""
    entry = JobLedger(state=state, fingerprint=OTHER if changed else FP)
    assert plan(FP, entry, retry_failed=retry_failed) is expected


def test_reimport_changed_deletes_then_sends() -> None:
    """--reimport-changed turns a changed imported job into REIMPORT (delete, then import); an
    unchanged one stays done, and a job with no image to delete is only reported."""
    changed = JobLedger(state=S.IMPORTED, fingerprint=OTHER, image_id="m-1")
    assert plan(FP, changed, retry_failed=False, reimport_changed=True) is A.REIMPORT
    same = JobLedger(state=S.IMPORTED, fingerprint=FP, image_id="m-1")
    assert plan(FP, same, retry_failed=False, reimport_changed=True) is A.SKIP_DONE
    no_image = JobLedger(state=S.IMPORTED, fingerprint=OTHER)
    assert plan(FP, no_image, retry_failed=False, reimport_changed=True) is A.SKIP_CHANGED


def test_table_covers_every_combination() -> None:
    """The table above holds every state x changed x retry_failed combination exactly once."""
    combos = {(s, c, r) for s, c, r, _ in TABLE}
    assert len(TABLE) == len(combos) == len(JobState) * 2 * 2


@pytest.mark.parametrize("retry_failed", [False, True])
def test_unknown_job_is_sent(retry_failed: bool) -> None:
    """A job the journal has never seen is sent."""
    assert plan(FP, None, retry_failed=retry_failed) is Action.SEND


@pytest.mark.parametrize(("state", "expected"), [(S.IMPORTED, A.SKIP_DONE), (S.FAILED, A.SKIP_FAILED)])
def test_missing_fingerprint_is_not_a_change(state: JobState, expected: Action) -> None:
    """A ledger entry without a fingerprint does not count as changed."""
    assert plan(FP, JobLedger(state=state), retry_failed=False) is expected


# plan_rows: the one planning loop behind the run's producer and --dry-run.

def _ledger(**entries: JobLedger) -> Ledger:
    return Ledger(jobs=dict(entries))


def test_plan_rows_gives_every_action_and_passes_invalid_rows_through() -> None:
    """Each valid row gets its action (the failed-image ones and --skip-existing included); an
    invalid row comes out as it went in, in its place."""
    jobs = {name: make_job(name) for name in ("new", "done", "failed-image", "in-doubt", "listed")}
    bad = InvalidRow("jobs.csv", 9, "9bad", (Problem("jobs.csv", 9, "ImageName", "bad"),))
    ledger = _ledger(**{
        "done": JobLedger(state=S.IMPORTED, fingerprint=jobs["done"].fingerprint),
        "failed-image": JobLedger(state=S.FAILED, fingerprint=jobs["failed-image"].fingerprint,
                                  image_id="m-1", image_status="Pack_failed"),
        "in-doubt": JobLedger(state=S.IN_DOUBT, fingerprint=jobs["in-doubt"].fingerprint),
    })
    rows = [jobs["new"], bad, jobs["done"], jobs["failed-image"], jobs["in-doubt"], jobs["listed"]]

    def actions(options: PlanOptions) -> list[object]:
        return [item if isinstance(item, InvalidRow) else (item.job.name, item.action)
                for item in plan_rows(rows, ledger, options)]

    assert actions(PlanOptions()) == [("new", A.SEND), bad, ("done", A.SKIP_DONE),
                                      ("failed-image", A.SKIP_FAILED), ("in-doubt", A.RECONCILE),
                                      ("listed", A.SEND)]
    assert actions(PlanOptions(retry_failed=True))[3] == ("failed-image", A.SKIP_FAILED_IMAGE)
    assert actions(PlanOptions(retry_failed=True, replace_failed_images=True))[3] == \
        ("failed-image", A.REPLACE)
    listed = list(plan_rows(rows, ledger, PlanOptions(existing={"listed": "m-9", "in-doubt": "m-8",
                                                                "done": "m-7"})))
    by_name = {item.job.name: item for item in listed if not isinstance(item, InvalidRow)}
    assert (by_name["listed"].action, by_name["listed"].existing_id) == (A.SKIP_EXISTING, "m-9")
    assert (by_name["in-doubt"].action, by_name["in-doubt"].existing_id) == (A.SKIP_EXISTING, "m-8")
    assert by_name["done"].action is A.SKIP_DONE


def test_dry_run_and_run_agree_on_failed_images(tmp_path: Path) -> None:
    """24 images that failed server-side: ``--dry-run --retry-failed --replace-failed-images`` says
    all 24 are deleted and imported again (it said "import 0"), ``--retry-failed`` alone says they
    are skipped for their failed image, and the real run then does what the dry run said."""
    jobs, journal = tmp_path / "jobs.csv", tmp_path / "j.jsonl"
    write_jobs(jobs, 24)
    with SimProcess("--available-after", "0", "--fail-fraction", "1", "--seed", "3") as sim:
        code, err = run_against(sim, jobs, journal, "--rate", "200", "--wait", "--poll-interval", "0.05")
        assert code == 1, err
        dry = cli("run", str(jobs), "--journal", str(journal), "--dry-run", "--retry-failed",
                  "--replace-failed-images")
        assert dry.returncode == 0, dry.stderr
        assert "import 0, reconcile first 0, delete the failed image and import again 24," in dry.stdout
        dry = cli("run", str(jobs), "--journal", str(journal), "--dry-run", "--retry-failed")
        assert "skip failed image 24 (--replace-failed-images to include)" in dry.stdout
        before = import_requests(sim)
        code, err = run_against(sim, jobs, journal, "--rate", "200", "--retry-failed",
                                "--replace-failed-images")
        assert code == 0, err
        assert import_requests(sim) - before == 24
        assert sum(sim.stats()["requests"].get("DeleteImage", {}).values()) == 24
