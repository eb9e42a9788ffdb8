"""Deleting an image, journaled step by step: a lost or "no such image" answer counts as deleted
once a lookup finds the image gone (issue #12, L4). Against the simulator on a loopback socket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.ens.client import EnsClient
from pipeline.ens.credentials import Credentials
from pipeline.ens.endpoint import resolve_endpoint
from pipeline.ens.transport import open_exchange
from pipeline.journal import records as r
from pipeline.journal.writer import JournalWriter
from pipeline.run.delete import DeleteOutcome, Deleter
from pipeline.simulator import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET, SimulatorConfig, serve_simulator
from tests.fakes import journal_lines, ledger_of
from tests.run_helpers import SimProcess, journal_records, run_against, write_jobs
from tests.simulator_fixtures import VALID

CREDS = Credentials(DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET)


async def _nothing() -> None:
    return None


async def _no_sleep(seconds: float) -> None:
    return None


async def delete_once(config: SimulatorConfig, journal: Path, *,
                      exists: bool = True) -> tuple[Any, list[dict[str, Any]], str]:
    """Import one image into a fresh simulator, then delete it with a Deleter; return
    (result, the simulator's images after, the image id)."""
    async with serve_simulator(config) as sim:
        endpoint = resolve_endpoint(endpoint=sim.url)
        async with open_exchange(endpoint, concurrency=2, connect_timeout=2, read_timeout=5) as http:
            client = EnsClient(http, endpoint, CREDS)
            image_id = (await client.import_image(VALID)).image_id
            if not exists:
                sim.state.images.remove(image_id)
            async with JournalWriter(journal).running() as writer:
                deleter = Deleter(client, writer, pace=_nothing, sleep=_no_sleep)
                result = await deleter.delete("centos-7", image_id, reason="test")
        return result, sim.images(), image_id


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / "j.jsonl"


@pytest.mark.asyncio
async def test_a_plain_delete_is_journaled_before_and_after(journal: Path) -> None:
    """job.delete (durable) before the call, job.deleted with the RequestId after."""
    result, images, image_id = await delete_once(SimulatorConfig(available_after=0, seed=1), journal)
    assert result.outcome is DeleteOutcome.DELETED
    assert images == []
    events = [(rec["event"], rec["image_id"]) for rec in journal_lines(journal)]
    assert events == [(r.JOB_DELETE, image_id), (r.JOB_DELETED, image_id)]
    assert journal_lines(journal)[1]["request_id"]


@pytest.mark.asyncio
async def test_a_lost_delete_answer_counts_as_deleted_once_the_image_is_gone(journal: Path) -> None:
    """L4: DeleteImage deleted the image but its answer was lost (connection dropped): a lookup
    finds no such image, so the deletion is recorded done, not failed."""
    config = SimulatorConfig(available_after=0, seed=1, delete_faults={"drop_after": 1.0})
    result, images, image_id = await delete_once(config, journal)
    assert result.outcome is DeleteOutcome.GONE
    assert images == []
    last = journal_lines(journal)[-1]
    assert (last["event"], last["image_id"], last["via"]) == (r.JOB_DELETED, image_id, "gone")
    assert ledger_of(journal).jobs["centos-7"].deleted_ids == (image_id,)


@pytest.mark.asyncio
async def test_no_such_image_counts_as_deleted(journal: Path) -> None:
    """L4, the next run: the image went with a lost answer, so DeleteImage now says
    InvalidParameter.ImageId; the job must not stay failed because of it."""
    result, _, _image_id = await delete_once(SimulatorConfig(available_after=0, seed=1), journal,
                                            exists=False)
    assert result.outcome is DeleteOutcome.GONE
    assert result.outcome.done
    assert journal_lines(journal)[-1]["event"] == r.JOB_DELETED


@pytest.mark.asyncio
async def test_an_image_still_creating_is_not_deleted(journal: Path) -> None:
    """IncorrectStatus.Image (still Creating): the image stays; the outcome says try later."""
    result, images, image_id = await delete_once(SimulatorConfig(available_after=3600, seed=1),
                                                 journal)
    assert result.outcome is DeleteOutcome.CREATING
    assert not result.outcome.done
    assert [i["ImageId"] for i in images] == [image_id]
    last = journal_lines(journal)[-1]
    assert (last["event"], last["creating"]) == (r.JOB_DELETE_FAILED, True)
    assert ledger_of(journal).jobs["centos-7"].deleting is None


@pytest.mark.asyncio
async def test_a_delete_that_keeps_failing_before_arrival_is_failed(journal: Path) -> None:
    """503 before anything happened, every time: after its tries the image is still there and
    the outcome is failed (journaled with the code)."""
    config = SimulatorConfig(available_after=0, seed=1, delete_faults={"error503": 1.0})
    result, images, _ = await delete_once(config, journal)
    assert result.outcome is DeleteOutcome.FAILED
    assert result.code == "ServiceUnavailable"
    assert len(images) == 1
    assert journal_lines(journal)[-1]["event"] == r.JOB_DELETE_FAILED


def test_replace_failed_images_with_a_lost_delete_answer_does_not_stay_failed(tmp_path: Path) -> None:
    """L4 end to end: the image failed server-side; --replace-failed-images deletes it, the
    answer is lost. The run counts it deleted (the image is gone) and imports the job again,
    instead of leaving it failed for every later run (which got InvalidParameter.ImageId)."""
    jobs, journal = tmp_path / "jobs.csv", tmp_path / "j.jsonl"
    (name,), _ = write_jobs(jobs, 1)
    with SimProcess("--fail-fraction", "1", "--available-after", "0", "--seed", "1",
                    "--delete-fault", "drop_after=1") as sim:
        code, err = run_against(sim, jobs, journal, "--wait", "--poll-interval", "0.1")
        assert code == 1, err
        (failed,) = sim.images()
        code, err = run_against(sim, jobs, journal, "--retry-failed", "--replace-failed-images")
        assert code == 0, err
        (new,) = sim.images()
    assert new["ImageId"] != failed["ImageId"]
    events = [(rec["event"], rec.get("via")) for rec in journal_records(journal) if rec["key"] == name]
    assert (r.JOB_DELETED, "gone") in events
    assert events[-1] == (r.JOB_IMPORTED, "import")
