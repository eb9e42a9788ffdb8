"""Secrets: a distinctive AccessKeySecret and STS token, driven through every error path (refused
secret, refused token, 5xx faults, kill -9 and resume, invalid rows, status, report, summary, JSON
logs), never appear in anything we write; the AccessKeyId appears only masked; the journal, the
report, the summary and the lock file are readable by their owner only.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.run_helpers import SimProcess, cli, cli_popen, wait_for_line, write_jobs

pytestmark = pytest.mark.timeout(120)

KEY_ID = "LTAIzz9PluralZAlpha01"
MASKED_ID = "LTAI****ha01"
SECRET = "S3CR3T-zz9-plural-z-alpha"
TOKEN = "T0K3N-zz9-plural-z-alpha-sts-4f1d"
WRONG_SECRET = "WR0NG-S3CR3T-beeblebrox"
WRONG_TOKEN = "T0K3N-WR0NG-arthur-dent"
NEVER = (SECRET, TOKEN, WRONG_SECRET, WRONG_TOKEN, KEY_ID)
ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
       "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN, "ENS_MIGRATE_RECONCILE_DELAY": "0.05",
       "ENS_MIGRATE_RECONCILE_HORIZON": "1",
       "ENS_MIGRATE_LOOKUP_RATE": "200"}


@pytest.fixture(scope="module")
def journey(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path]:
    """Run every path once; return every stream we printed and the directory of files we wrote."""
    tmp_path = tmp_path_factory.mktemp("secrets")
    out = tmp_path / "out"
    out.mkdir()
    jobs = tmp_path / "jobs.csv"
    write_jobs(jobs, 60, invalid_every=15)
    journal = out / "j.jsonl"
    streams: list[str] = []

    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = cli(*args, env={**ENV, **(env or {})})
        streams.extend((result.stdout, result.stderr))
        assert "Traceback" not in result.stderr, result.stderr
        return result

    faults = ("--fault", "error500=0.1", "--fault", "error503=0.1", "--fault", "drop_after=0.05",
              "--fault", "garbage=0.05", "--latency", "0.0-0.02", "--seed", "4")
    with SimProcess(*faults, env=ENV) as sim:
        base = ("run", str(jobs), "--endpoint", sim.url, "--journal", str(journal), "--timeout", "0.5")
        refused = run(*base, env={"ALIBABA_CLOUD_ACCESS_KEY_SECRET": WRONG_SECRET})
        assert refused.returncode == 4, refused.stderr
        assert "SignatureDoesNotMatch" in refused.stderr
        refused = run(*base, env={"ALIBABA_CLOUD_SECURITY_TOKEN": WRONG_TOKEN})
        assert refused.returncode == 4, refused.stderr
        assert "InvalidSecurityToken" in refused.stderr

        proc = cli_popen(*base, "--rate", "40", "--log-format", "json", env=ENV)
        assert wait_for_line(journal, '"event":"job.imported"', time.monotonic() + 30)
        os.kill(proc.pid, signal.SIGKILL)
        streams.extend(proc.communicate())

        resumed = run(*base, "--rate", "300", "--log-format", "json", "--summary", str(out / "summary.json"))
        assert resumed.returncode == 1, resumed.stderr  # the invalid rows
        console = run(*base, "--rate", "300", "--retry-failed", "--summary", str(out / "summary2.json"))
        assert console.returncode == 1, console.stderr
    assert run("status", "--journal", str(journal)).returncode == 0
    assert run("status", "--journal", str(journal), "--json").returncode == 0
    assert run("report", "--journal", str(journal), "--out", str(out / "report.csv")).returncode == 0
    assert run("report", "--journal", str(journal), "--out", str(out / "failed.csv"),
               "--failed-only").returncode == 0
    return streams, out


def test_no_secret_token_or_full_key_id_in_any_stream_or_file(journey: tuple[list[str], Path]) -> None:
    """Neither the secret, the token, a wrong secret or token, nor the full AccessKeyId appears in
    stdout, stderr, the journal, its lock, the reports or the summaries."""
    streams, out = journey
    files = {p.name: p.read_text(encoding="utf-8", errors="replace") for p in out.iterdir()}
    assert {"j.jsonl", "j.jsonl.lock", "summary.json", "report.csv", "failed.csv"} <= set(files)
    for needle in NEVER:
        assert not [s for s in streams if needle in s], needle
        assert [name for name, text in files.items() if needle in text] == [], needle


def test_the_files_we_write_are_readable_by_the_owner_only(journey: tuple[list[str], Path]) -> None:
    """Journal, lock, report, failed-only list and summaries are created 0600."""
    _, out = journey
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes == dict.fromkeys(modes, 0o600), modes


def test_the_key_id_is_shown_masked_when_it_is_shown(tmp_path: Path) -> None:
    """A refused key names the AccessKeyId only as LTAI****xxxx, if at all."""
    jobs = tmp_path / "jobs.csv"
    write_jobs(jobs, 3)
    with SimProcess(env=ENV) as sim:
        result = cli("run", str(jobs), "--endpoint", sim.url, "--journal", str(tmp_path / "j.jsonl"),
                     env={**ENV, "ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID.replace("01", "02")})
    assert result.returncode == 4, result.stderr
    assert "InvalidAccessKeyId" in result.stderr
    assert KEY_ID.replace("01", "02") not in result.stderr + result.stdout
    assert SECRET not in result.stderr + result.stdout


OIDC_CANARY = "eyJ0eXAi.oidc-canary-marvin-paranoid.c2ln"
URI_CANARY = "uri-query-canary-trillian"
META_SECRET = "meta-secret-canary-slartibartfast"
META_TOKEN = "meta-sts-token-canary-fenchurch"


def test_failing_credential_sources_name_no_secret(tmp_path: Path) -> None:
    """Every new source, failing in its own way (STS refusing the OIDC role, a credentials URI
    with a token in its query answering an error, a metadata service handing out half an answer,
    a static STS token from a RamRoleArn-refused profile): exit 2 with the reason, and neither the
    OIDC token, the URI's query, the metadata token nor any served secret in what we print."""
    from tests.credential_fakes import CredentialFakes

    jobs = tmp_path / "jobs.csv"
    write_jobs(jobs, 2)
    token_file = tmp_path / "token"
    token_file.write_text(OIDC_CANARY, encoding="utf-8")
    no_keys = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ""}
    half = {"Code": "Success", "AccessKeyId": "STS.half", "AccessKeySecret": META_SECRET,
            "SecurityToken": META_TOKEN}  # no Expiration: refused
    printed: list[str] = []
    with SimProcess() as sim, CredentialFakes(None, static=half) as meta:
        base = ("run", str(jobs), "--endpoint", sim.url, "--journal", str(tmp_path / "j.jsonl"))
        cases = {
            "oidc refused": {**no_keys, "ALIBABA_CLOUD_ROLE_ARN": "not-a-role-arn",
                             "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": "acs:ram::1:oidc-provider/p",
                             "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(token_file),
                             "ALIBABA_CLOUD_STS_ENDPOINT": sim.url},
            "uri error": {**no_keys, "ALIBABA_CLOUD_CREDENTIALS_URI":
                          f"http://127.0.0.1:9/creds?token={URI_CANARY}"},
            "metadata half answer": {**no_keys, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "false",
                                     "ENS_MIGRATE_ECS_METADATA_ENDPOINT": meta.url,
                                     "ALIBABA_CLOUD_CREDENTIALS_URI": f"{meta.url}/creds?token={URI_CANARY}"},
        }
        for what, env in cases.items():
            result = cli(*base, "--log-format", "json", env=env)
            assert result.returncode == 2, (what, result.stderr)
            assert "Traceback" not in result.stderr, what
            printed += [result.stdout, result.stderr]
    text = "\n".join(printed)
    assert "InvalidParameter.RoleArn" in text
    assert "Expiration" in text
    for canary in (OIDC_CANARY, URI_CANARY, META_SECRET, META_TOKEN, meta.metadata_token):
        assert canary not in text, canary
