"""Credentials that expire during a run, end to end against the simulator's STS (issue #15).

RRSA, the ECS RAM role (fake IMDSv2 on loopback), a RamRoleArn profile and a credentials URI each
drive a run several credential lifetimes long: every job imported exactly once, none failed,
exit 0, several renewals. A static STS token that runs out mid-run stops resumably (exit 3, none
failed) and the rerun with a fresh token finishes with exit 0, without --retry-failed. No secret
of any source appears in anything the tool wrote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.credential_fakes import ROLE_ARN, CredentialFakes, assume
from tests.run_helpers import SimProcess, cli, cli_popen, imported_counts, write_jobs

pytestmark = pytest.mark.timeout(300)

OIDC_TOKEN = "eyJhbGciOiJSUzI1NiJ9.oidc-canary-token-zaphod.c2lnbmF0dXJl"
NO_ENV_KEYS = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ""}


@dataclass
class Scenario:
    name: str
    env: dict[str, str]
    fakes: CredentialFakes | None = None


def _scenarios(tmp: Path, sim_url: str, ecs: CredentialFakes, uri: CredentialFakes) -> list[Scenario]:
    token_file = tmp / "oidc-token"
    token_file.write_text(OIDC_TOKEN, encoding="utf-8")
    home = tmp / "home"
    (home / ".aliyun").mkdir(parents=True)
    (home / ".aliyun" / "config.json").write_text(json.dumps({"current": "migrate", "profiles": [
        {"name": "migrate", "mode": "RamRoleArn", "access_key_id": "SIMULATORKEYID0001",
         "access_key_secret": "simulator-dev-secret-not-for-production", "ram_role_arn": ROLE_ARN,
         "ram_session_name": "nightly", "expired_seconds": 900}]}), encoding="utf-8")
    return [
        Scenario("rrsa", {**NO_ENV_KEYS, "ALIBABA_CLOUD_ROLE_ARN": ROLE_ARN,
                          "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": "acs:ram::1234567890:oidc-provider/ack",
                          "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(token_file),
                          "ALIBABA_CLOUD_STS_ENDPOINT": sim_url}),
        Scenario("ecs", {**NO_ENV_KEYS, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "false",
                         "ENS_MIGRATE_ECS_METADATA_ENDPOINT": ecs.url}, ecs),
        Scenario("ramrolearn", {**NO_ENV_KEYS, "HOME": str(home),
                                "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "false",
                                "ALIBABA_CLOUD_STS_ENDPOINT": sim_url}),
        Scenario("uri", {**NO_ENV_KEYS, "ALIBABA_CLOUD_CREDENTIALS_URI": f"{uri.url}/creds?sig=abc"}, uri),
    ]


def _tool_output(tmp: Path, streams: list[str]) -> str:
    files = [p.read_text(encoding="utf-8", errors="replace") for p in tmp.rglob("*")
             if p.is_file() and p.name != "oidc-token" and "home" not in p.parts]
    return "\n".join(streams + files)


def _refreshing_runs(tmp: Path, *, ttl: float, jobs: int, rate: float, min_renewals: int) -> None:
    with SimProcess("--sts-ttl", str(ttl)) as sim, CredentialFakes(sim.url) as ecs, \
            CredentialFakes(sim.url) as uri:
        scenarios = _scenarios(tmp, sim.url, ecs, uri)
        procs = {}
        for s in scenarios:
            write_jobs(tmp / f"{s.name}.csv", jobs, prefix=s.name)
            procs[s.name] = cli_popen(
                "run", str(tmp / f"{s.name}.csv"), "--endpoint", sim.url, "--journal",
                str(tmp / f"{s.name}.jsonl"), "--rate", str(rate), "--summary",
                str(tmp / f"{s.name}.summary.json"), "--log-format", "json", env=s.env)
        results = {name: proc.communicate(timeout=240) for name, proc in procs.items()}
        images = imported_counts(sim.images())
        issued = sim.stats()["sts_issued"]
    streams: list[str] = []
    for s in scenarios:
        out, err = results[s.name]
        streams += [out, err]
        assert procs[s.name].returncode == 0, (s.name, err[-3000:])
        summary = json.loads((tmp / f"{s.name}.summary.json").read_text(encoding="utf-8"))
        assert summary["counts"]["failed"] == 0, s.name
        assert summary["counts"]["imported"] == jobs, s.name
        mine = {name: n for name, n in images.items() if name.startswith(s.name + "-")}
        assert len(mine) == jobs, s.name
        assert set(mine.values()) == {1}, s.name
        renewals = err.count("ens_migrate.credentials.renewed")
        print(f"{s.name}: {jobs} imported once each, {renewals} renewals, {summary['elapsed_seconds']} s")
        assert renewals >= min_renewals, (s.name, renewals, err[-2000:])
        assert "Credentials.Expired" not in err, s.name
    print(f"simulator STS issued {issued} credential sets")
    assert issued >= 4 * (min_renewals + 1)
    assert ecs.token_puts >= 1
    assert ecs.fetches >= min_renewals + 1
    text = _tool_output(tmp, streams)
    for canary in (OIDC_TOKEN, ecs.metadata_token, *ecs.served, *uri.served, "sig=abc"):
        assert canary not in text, canary


def test_refreshing_sources_keep_a_run_going(tmp_path: Path) -> None:
    """3 s credentials, a 4 s run, four sources side by side: renewed, never a failure."""
    _refreshing_runs(tmp_path, ttl=3, jobs=80, rate=20, min_renewals=2)


@pytest.mark.long
def test_refreshing_sources_keep_a_60s_run_going(tmp_path: Path) -> None:
    """The acceptance run: 20 s credentials, a 60 s run, for each of the four sources."""
    _refreshing_runs(tmp_path, ttl=20, jobs=600, rate=10, min_renewals=3)


def _static_env(sim_url: str) -> tuple[dict[str, str], list[str]]:
    creds = assume(sim_url)
    assert creds.security_token
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": creds.access_key_id,
           "ALIBABA_CLOUD_ACCESS_KEY_SECRET": creds.access_key_secret,
           "ALIBABA_CLOUD_SECURITY_TOKEN": creds.security_token}
    return env, [creds.access_key_secret, creds.security_token]


def test_static_token_expiring_mid_run_stops_resumably(tmp_path: Path) -> None:
    """A static env STS token that runs out mid-run: exit 3, 0 failed, the fix named; the rerun
    with a fresh token exits 0 without --retry-failed, each job imported once."""
    jobs = tmp_path / "jobs.csv"
    write_jobs(jobs, 120)
    journal = tmp_path / "j.jsonl"
    streams: list[str] = []
    canaries: list[str] = []
    with SimProcess("--sts-ttl", "3") as sim:
        env, secrets = _static_env(sim.url)
        canaries += secrets
        first = cli("run", str(jobs), "--endpoint", sim.url, "--journal", str(journal), "--rate", "20",
                    "--summary", str(tmp_path / "first.json"), env=env)
        streams += [first.stdout, first.stderr]
        assert first.returncode == 3, first.stderr[-3000:]
        assert "expired" in first.stderr
        assert "ALIBABA_CLOUD_SECURITY_TOKEN" in first.stderr
        summary = json.loads((tmp_path / "first.json").read_text(encoding="utf-8"))
        assert summary["counts"]["failed"] == 0
        assert summary["stopped"] == "credentials"
        assert 0 < summary["counts"]["imported"] < 120
        env, secrets = _static_env(sim.url)
        canaries += secrets
        second = cli("run", str(jobs), "--endpoint", sim.url, "--journal", str(journal), "--rate", "400",
                     env=env)
        streams += [second.stdout, second.stderr]
        assert second.returncode == 0, second.stderr[-3000:]
        counts = imported_counts(sim.images())
    assert len(counts) == 120
    assert set(counts.values()) == {1}
    status = cli("status", "--journal", str(journal))
    streams += [status.stdout, status.stderr]
    text = _tool_output(tmp_path, streams)
    for canary in canaries:
        assert canary not in text


def test_no_credentials_fails_fast(tmp_path: Path) -> None:
    """With the loopback guard and nothing configured, the run fails at once (exit 2) naming
    every source tried; it never waits on an address off this machine."""
    write_jobs(tmp_path / "jobs.csv", 3)
    result = cli("run", str(tmp_path / "jobs.csv"), "--endpoint", "http://127.0.0.1:9",
                 "--journal", str(tmp_path / "j.jsonl"), env={**NO_ENV_KEYS, "HOME": str(tmp_path)},
                 timeout=30)
    assert result.returncode == 2, result.stderr
    assert "no Alibaba Cloud credentials found" in result.stderr
    assert "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true" in result.stderr



def test_fresh_credentials_refused_as_expired_stop_resumably(tmp_path: Path) -> None:
    """The gateway's clock runs 10 minutes ahead, so it calls even fresh 5-minute credentials
    expired: renewed once, refused again, then exit 3 naming the clock; nothing failed."""
    token_file = tmp_path / "oidc-token"
    token_file.write_text(OIDC_TOKEN, encoding="utf-8")
    write_jobs(tmp_path / "jobs.csv", 5)
    with SimProcess("--sts-ttl", "300", "--clock-offset", "600") as sim:
        env = {**NO_ENV_KEYS, "ALIBABA_CLOUD_ROLE_ARN": ROLE_ARN,
               "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": "acs:ram::1234567890:oidc-provider/ack",
               "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(token_file), "ALIBABA_CLOUD_STS_ENDPOINT": sim.url}
        result = cli("run", str(tmp_path / "jobs.csv"), "--endpoint", sim.url, "--journal",
                     str(tmp_path / "j.jsonl"), "--summary", str(tmp_path / "s.json"), env=env)
    assert result.returncode == 3, result.stderr[-3000:]
    assert "check the local clock" in result.stderr
    summary = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert summary["counts"]["failed"] == 0
    assert summary["stopped"] == "credentials"
    assert OIDC_TOKEN not in result.stderr + result.stdout
