"""Credentials that expire while `watch` or `run --wait` polls, end to end (known gap of issue #15).

The wait stops polling at once, as the run does: exit 3, one line naming the credential source and
the fix (renew, then run `ens-migrate watch` again), no traceback, no secret anywhere, and nothing
in the journal that makes an image look failed or timed out: the next watch picks every image up.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.credential_fakes import CredentialFakes, assume
from tests.run_helpers import (
    FAST,
    SimProcess,
    cli,
    cli_popen,
    journal_records,
    run_against,
    wait_for_line,
    write_jobs,
)

pytestmark = pytest.mark.timeout(240)

NO_ENV_KEYS = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ""}
NEVER_AVAILABLE = ("--available-after", "3600")
"""The images stay importing: the wait outlasts the credentials."""


def _status_records(journal: Path) -> list[dict[str, object]]:
    return [r for r in journal_records(journal) if r["event"] == "job.status"]


def _everything_written(tmp: Path, streams: list[str]) -> str:
    files = [p.read_text(encoding="utf-8", errors="replace") for p in tmp.rglob("*") if p.is_file()]
    return "\n".join(streams + files)


def test_watch_stops_at_once_when_a_static_token_expires(tmp_path: Path) -> None:
    """`watch` with a static STS token that runs out while the images are still importing: exit 3
    long before the wait timeout, one line naming ALIBABA_CLOUD_SECURITY_TOKEN and `ens-migrate
    watch`, no job.status recorded (no image looks failed or timed out), no secret written."""
    write_jobs(tmp_path / "jobs.csv", 5)
    journal = tmp_path / "j.jsonl"
    with SimProcess("--sts-ttl", "2", *NEVER_AVAILABLE) as sim:
        code, err = run_against(sim, tmp_path / "jobs.csv", journal, "--rate", "200")
        assert code == 0, err
        creds = assume(sim.url)
        assert creds.security_token
        secrets = [creds.access_key_secret, creds.security_token]
        env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": creds.access_key_id,
               "ALIBABA_CLOUD_ACCESS_KEY_SECRET": creds.access_key_secret,
               "ALIBABA_CLOUD_SECURITY_TOKEN": creds.security_token}
        started = time.monotonic()
        watched = cli("watch", "--journal", str(journal), "--endpoint", sim.url, "--poll-interval", "0.2",
                      "--wait-timeout", "30s", env=env)
        elapsed = time.monotonic() - started
    assert watched.returncode == 3, watched.stderr[-3000:]
    assert elapsed < 25, f"polled on for {elapsed:.0f} s after the token expired"
    assert "Traceback" not in watched.stderr
    expiry = [line for line in watched.stderr.splitlines() if "expired" in line]
    assert len(expiry) == 1, watched.stderr[-3000:]
    assert "ALIBABA_CLOUD_SECURITY_TOKEN" in expiry[0]
    assert f"`ens-migrate watch --journal {journal}` again" in expiry[0]
    assert "5 not checked" in watched.stderr
    assert _status_records(journal) == []
    status = json.loads(cli("status", "--journal", str(journal), "--json").stdout)
    assert status["counts"]["failed"] == 0
    text = _everything_written(tmp_path, [watched.stdout, watched.stderr])
    for secret in secrets:
        assert secret not in text


def test_run_wait_stops_when_the_credentials_uri_cannot_renew(tmp_path: Path) -> None:
    """`run --wait` from a credentials URI that goes away after the imports: once the credentials
    run out the wait stops (exit 3), the imports stand (summary: 5 imported, 0 failed), and one line
    names the URI source and `ens-migrate watch`; nothing recorded makes an image look failed."""
    write_jobs(tmp_path / "jobs.csv", 5)
    journal = tmp_path / "j.jsonl"
    with SimProcess("--sts-ttl", "3", *NEVER_AVAILABLE) as sim, CredentialFakes(sim.url) as uri:
        env = {**FAST, **NO_ENV_KEYS, "ALIBABA_CLOUD_CREDENTIALS_URI": f"{uri.url}/creds?sig=abc"}
        proc = cli_popen("run", str(tmp_path / "jobs.csv"), "--endpoint", sim.url, "--journal", str(journal),
                         "--rate", "200", "--wait", "--poll-interval", "0.2", "--wait-timeout", "30s",
                         "--summary", str(tmp_path / "summary.json"), env=env)
        try:
            assert wait_for_line(journal, '"run.end"', time.monotonic() + 60), "the run did not end"
            uri.server.shutdown()  # the source goes away: no renewal from here on
            uri.server.server_close()
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        served = list(uri.served)
    assert proc.returncode == 3, err[-3000:]
    assert "Traceback" not in err
    expiry = [line for line in err.splitlines() if "ens-migrate watch" in line]
    assert len(expiry) == 1, err[-3000:]
    assert "credentials URI" in expiry[0]
    assert "expired" in expiry[0]
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert (summary["counts"]["imported"], summary["counts"]["failed"]) == (5, 0)
    assert summary["exit_code"] == 3
    assert summary["images"]["failed"] == 0
    assert _status_records(journal) == []
    text = _everything_written(tmp_path, [out, err])
    for secret in (*served, "sig=abc"):
        assert secret not in text
