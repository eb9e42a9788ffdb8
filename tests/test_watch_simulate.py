"""``watch --simulate`` waits on a ``run --simulate`` like ``run --simulate --wait`` would (issue #14)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.run_helpers import cli, journal_records, write_jobs


def test_watch_simulate_finishes_the_wait_of_a_simulated_run(tmp_path: Path) -> None:
    """A simulated run without --wait, then `watch --simulate`: every image Available, exit 0."""
    valid, _ = write_jobs(tmp_path / "jobs.csv", 5)
    journal = tmp_path / "sim.journal.jsonl"
    ran = cli("run", str(tmp_path / "jobs.csv"), "--simulate", "--journal", str(journal), "--rate", "100",
              cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    state = json.loads((tmp_path / "sim.journal.jsonl.simulator.json").read_text())
    assert len(state["images"]) == len(valid)

    watched = cli("watch", "--journal", str(journal), "--simulate", "--poll-interval", "0.2",
                  "--wait-timeout", "60s", cwd=tmp_path)
    assert watched.returncode == 0, watched.stderr
    assert "SIMULATION" in watched.stderr
    assert f"{len(valid)} Available" in watched.stderr
    statuses = [r for r in journal_records(journal) if r.get("event") == "job.status"]
    assert len(statuses) == len(valid)
    assert {r["status"] for r in statuses} == {"Available"}


def test_watch_without_simulate_names_the_flag(tmp_path: Path) -> None:
    """A simulated run's journal watched against a real endpoint: refused, and the message says --simulate."""
    write_jobs(tmp_path / "jobs.csv", 1)
    journal = tmp_path / "sim.journal.jsonl"
    assert cli("run", str(tmp_path / "jobs.csv"), "--simulate", "--journal", str(journal),
               cwd=tmp_path).returncode == 0
    watched = cli("watch", "--journal", str(journal), "--endpoint", "http://127.0.0.1:9", cwd=tmp_path)
    assert watched.returncode != 0
    assert "--simulate" in watched.stderr
