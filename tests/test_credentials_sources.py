"""Each credentials source on its own, against loopback fakes: STS endpoint rules, IMDSv2 and its
v1 fallback, no proxy for the metadata service, the OIDC token file read at every renewal,
--profile and ALIBABA_CLOUD_REGION_ID."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from pipeline.ens import chain, sts
from pipeline.ens.credentials import RefreshingCredentials, resolve_credentials
from pipeline.errors import CredentialsError, CredentialsExpired
from pipeline.settings import resolve_settings
from tests.credential_fakes import ROLE, ROLE_ARN, CredentialFakes
from tests.loopback import LOOPBACK_GUARD
from tests.run_helpers import SimProcess, cli, write_jobs

ANSWER = {"Code": "Success", "AccessKeyId": "STS.fixedKey000001", "AccessKeySecret": "fixed-secret",
          "SecurityToken": "fixed-token", "Expiration": "2099-01-01T00:00:00Z"}


def ecs_env(url: str, **extra: str) -> dict[str, str]:
    return {**LOOPBACK_GUARD, "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "false",
            "ENS_MIGRATE_ECS_METADATA_ENDPOINT": url, **extra}


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "https://sts.aliyuncs.com"),
    ({"ALIBABA_CLOUD_STS_REGION": "cn-shanghai"}, "https://sts.cn-shanghai.aliyuncs.com"),
    ({"ALIBABA_CLOUD_STS_REGION": "cn-shanghai", "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED": "true"},
     "https://sts-vpc.cn-shanghai.aliyuncs.com"),
    ({"ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED": "true"}, "https://sts.aliyuncs.com"),
    ({"ALIBABA_CLOUD_STS_ENDPOINT": "sts.internal.example"}, "https://sts.internal.example"),
    ({"ALIBABA_CLOUD_STS_ENDPOINT": "http://127.0.0.1:8080/"}, "http://127.0.0.1:8080"),
    ({"ALIBABA_CLOUD_STS_ENDPOINT": "http://[::1]:8080"}, "http://[::1]:8080"),
])
def test_sts_endpoint_rules(env: dict[str, str], expected: str) -> None:
    """The SDK's host rules, and ALIBABA_CLOUD_STS_ENDPOINT for private networks and tests."""
    assert sts.sts_endpoint(env) == expected


def test_plain_http_sts_only_on_loopback() -> None:
    """Credentials travel in STS's answer: plain http to another host is refused."""
    with pytest.raises(CredentialsError, match="plain http is allowed for loopback only"):
        sts.sts_endpoint({"ALIBABA_CLOUD_STS_ENDPOINT": "http://sts.internal.example"})


def test_profile_region_beats_the_environment() -> None:
    """A profile's sts_region / enable_vpc win over ALIBABA_CLOUD_STS_REGION."""
    env = {"ALIBABA_CLOUD_STS_REGION": "cn-beijing"}
    assert sts.sts_endpoint(env, region="cn-hangzhou", vpc=True) == "https://sts-vpc.cn-hangzhou.aliyuncs.com"


def test_ecs_imdsv2_token_then_role(tmp_path: Path) -> None:
    """IMDSv2: a PUT for the token (with its TTL header), then the role's credentials with it."""
    with CredentialFakes(None, static=ANSWER) as meta:
        creds = resolve_credentials(ecs_env(meta.url), tmp_path)
    assert (creds.access_key_id, creds.security_token) == ("STS.fixedKey000001", "fixed-token")
    assert meta.token_puts == 1
    assert ROLE in creds.source


def test_ecs_never_through_a_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY (a dead loopback port here) is not used for the metadata service."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    with CredentialFakes(None, static=ANSWER) as meta:
        creds = resolve_credentials(ecs_env(meta.url, ALIBABA_CLOUD_ECS_METADATA=ROLE), tmp_path)
    assert creds.access_key_id == "STS.fixedKey000001"


def test_ecs_v1_fallback_and_its_switch(tmp_path: Path) -> None:
    """No IMDSv2 token: v1 (no token) unless ALIBABA_CLOUD_IMDSV1_DISABLED=true."""
    with CredentialFakes(None, static=ANSWER, require_token=False) as meta:
        meta.metadata_token = ""  # the PUT answers an empty token: no IMDSv2 here
        creds = resolve_credentials(ecs_env(meta.url), tmp_path)
        assert creds.access_key_id == "STS.fixedKey000001"
        with pytest.raises(CredentialsError, match="ALIBABA_CLOUD_IMDSV1_DISABLED=true"):
            resolve_credentials(ecs_env(meta.url, ALIBABA_CLOUD_IMDSV1_DISABLED="true"), tmp_path)


def test_ecs_off_the_instance_falls_through_to_the_uri(tmp_path: Path) -> None:
    """No metadata service (a dead loopback port): the chain goes on to the credentials URI."""
    with CredentialFakes(None, static={**ANSWER, "AccessKeyId": "STS.fromUri0000001"}) as uri:
        env = ecs_env("http://127.0.0.1:9", ALIBABA_CLOUD_CREDENTIALS_URI=f"{uri.url}/creds")
        assert resolve_credentials(env, tmp_path).access_key_id == "STS.fromUri0000001"


def test_uri_answer_must_say_success(tmp_path: Path) -> None:
    """A URI answer whose Code is not Success is refused with the Code named."""
    with CredentialFakes(None, static={**ANSWER, "Code": "Failure"}) as uri:
        env = {**LOOPBACK_GUARD, "ALIBABA_CLOUD_CREDENTIALS_URI": f"{uri.url}/creds"}
        with pytest.raises(CredentialsError, match="'Failure'"):
            resolve_credentials(env, tmp_path)


def test_oidc_token_file_is_read_at_every_renewal(tmp_path: Path) -> None:
    """The kubelet rotates the token: each renewal reads the file again (emptied here: the
    renewal fails, and once the credentials run out that is CredentialsExpired)."""
    token = tmp_path / "token"
    token.write_text("first-token", encoding="utf-8")
    with SimProcess("--sts-ttl", "3600") as sim:
        env = {**LOOPBACK_GUARD, "ALIBABA_CLOUD_STS_ENDPOINT": sim.url}
        role = sts.RoleRequest(ROLE_ARN, "test")
        source = chain.oidc_source(env, role, "acs:ram::1:oidc-provider/p", token, "RRSA (test)")

        async def scenario() -> None:
            first = await source.load()
            token.write_text("second-token", encoding="utf-8")
            second = await source.renew(first, "InvalidSecurityToken.Expired")
            assert second.access_key_id != first.access_key_id
            token.write_text("", encoding="utf-8")
            with pytest.raises(CredentialsExpired, match="is empty"):
                await source.renew(second, "InvalidSecurityToken.Expired")

        anyio.run(scenario)
    assert isinstance(source, RefreshingCredentials)
    assert source.refreshes == 1


def test_profile_flag_picks_the_profile(tmp_path: Path) -> None:
    """--profile NAME is ALIBABA_CLOUD_PROFILE: the run signs with that profile's keys (the
    simulator refuses any other key, so a wrong pick would not import)."""
    (tmp_path / ".aliyun").mkdir()
    (tmp_path / ".aliyun" / "config.json").write_text(json.dumps({"current": "default", "profiles": [
        {"name": "default", "mode": "AK", "access_key_id": "LTAIwrongKey00001", "access_key_secret": "x"},
        {"name": "sim", "mode": "AK", "access_key_id": "SIMULATORKEYID0001",
         "access_key_secret": "simulator-dev-secret-not-for-production"}]}), encoding="utf-8")
    write_jobs(tmp_path / "jobs.csv", 3)
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "", "HOME": str(tmp_path),
           "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "false"}
    with SimProcess() as sim:
        result = cli("run", str(tmp_path / "jobs.csv"), "--endpoint", sim.url, "--profile", "sim",
                     "--journal", str(tmp_path / "j.jsonl"), env=env)
    assert result.returncode == 0, result.stderr


def test_region_id_is_the_region_default() -> None:
    """ALIBABA_CLOUD_REGION_ID sets the region when no flag, ENS_MIGRATE_REGION or file does."""
    env = {"ALIBABA_CLOUD_REGION_ID": "cn-shanghai"}
    assert resolve_settings(flags={}, env=env, file_section={}, file_name="f").region == "cn-shanghai"
    assert resolve_settings(flags={}, env={**env, "ENS_MIGRATE_REGION": "cn-hangzhou"}, file_section={},
                            file_name="f").region == "cn-hangzhou"
    assert resolve_settings(flags={}, env=env, file_section={"region": "cn-beijing"},
                            file_name="f").region == "cn-beijing"
