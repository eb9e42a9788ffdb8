"""Our credentials chain against the official ``alibabacloud-credentials`` 1.0.12 (the test oracle):
on each configuration (a temporary HOME, environment, fake metadata service, credentials URI and
the simulator's STS, all on loopback) both resolve the same credentials, except the deliberate
differences listed in DELIBERATE with their reasons.

Credentials from STS are fresh on every call, so for those the comparison is of their kind (an
``STS.`` key with a token, from the same role); static answers are compared exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from pipeline.ens.credentials import resolve_credentials
from pipeline.errors import CredentialsError
from tests.credential_fakes import ROLE, ROLE_ARN, CredentialFakes
from tests.loopback import LOOPBACK_GUARD
from tests.run_helpers import SimProcess

pytestmark = pytest.mark.timeout(180)

AK = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIenvKeyId00001", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret-1"}
DEV = {"access_key_id": "SIMULATORKEYID0001", "access_key_secret": "simulator-dev-secret-not-for-production"}
PROVIDER = "acs:ram::1234567890:oidc-provider/ack"
ECS_ANSWER = {"Code": "Success", "AccessKeyId": "STS.ecsFixedKey0001", "AccessKeySecret": "ecs-fixed-secret",
              "SecurityToken": "ecs-fixed-token", "Expiration": "2099-01-01T00:00:00Z"}
URI_ANSWER = {**ECS_ANSWER, "AccessKeyId": "STS.uriFixedKey0001"}
ECS_ON = {"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "false"}


def cli(profiles: list[dict[str, Any]], current: str = "default") -> dict[str, str]:
    return {".aliyun/config.json": json.dumps({"current": current, "profiles": profiles})}


def ini(text: str, path: str = ".alibabacloud/credentials.ini") -> dict[str, str]:
    return {path: text}


def ak_profile(name: str = "default", key: str = "LTAIcliKeyId00001") -> dict[str, Any]:
    return {"name": name, "mode": "AK", "access_key_id": key, "access_key_secret": "cli-secret"}


INI_AK = "[default]\ntype = access_key\naccess_key_id = LTAIiniKeyId00001\naccess_key_secret = ini-secret\n"
TOKEN_FILE = "oidc-token"
RRSA = {"ALIBABA_CLOUD_ROLE_ARN": ROLE_ARN, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": PROVIDER,
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE": "{home}/oidc-token"}

# name: (environment, files under HOME)
CONFIGS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "env-ak": (AK, {}),
    "env-sts": ({**AK, "ALIBABA_CLOUD_SECURITY_TOKEN": "env-token"}, {}),
    "env-id-only-falls-to-cli": ({"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIonly"}, cli([ak_profile()])),
    "env-secret-only-nothing-else": ({"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s"}, {}),
    "env-wins-over-cli": (AK, cli([ak_profile()])),
    "nothing": ({}, {}),
    "cli-ak-current": ({}, cli([ak_profile("other", "LTAIotherKey00001"), ak_profile()])),
    "cli-profile-env": ({"ALIBABA_CLOUD_PROFILE": "other"},
                        cli([ak_profile(), ak_profile("other", "LTAIother2")])),
    "cli-ststoken": ({}, cli([{"name": "default", "mode": "StsToken", "access_key_id": "LTAIstsCli000001",
                               "access_key_secret": "cli-s", "sts_token": "cli-token"}])),
    "cli-disabled-ini": ({"ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "true"},
                         {**cli([ak_profile()]), **ini(INI_AK)}),
    "cli-missing-profile-ini": ({"ALIBABA_CLOUD_PROFILE": "nope"}, {**cli([ak_profile()]),
                                                                   **ini(INI_AK.replace("default", "nope"))}),
    "cli-broken-json-ini": ({}, {".aliyun/config.json": "{not json", **ini(INI_AK)}),
    "cli-ramrolearn": ({}, cli([{"name": "default", "mode": "RamRoleArn", **DEV, "ram_role_arn": ROLE_ARN,
                                 "ram_session_name": "s1"}])),
    "cli-ecsramrole": (ECS_ON, cli([{"name": "default", "mode": "EcsRamRole", "ram_role_name": ROLE}])),
    "cli-oidc": ({}, cli([{"name": "default", "mode": "OIDC", "ram_role_arn": ROLE_ARN,
                           "oidc_provider_arn": PROVIDER, "oidc_token_file": "{home}/oidc-token",
                           "role_session_name": "s2"}])),
    "cli-chainable": ({}, cli([{"name": "base", **ak_profile("base"), **DEV},
                               {"name": "default", "mode": "ChainableRamRoleArn", "source_profile": "base",
                                "ram_role_arn": ROLE_ARN, "ram_session_name": "s3"}])),
    "cli-cloudsso-alone": ({}, cli([{"name": "default", "mode": "CloudSSO"}])),
    "cli-external-alone": ({}, cli([{"name": "default", "mode": "External"}])),
    "ini-ak": ({}, ini(INI_AK)),
    "ini-profile-section": ({"ALIBABA_CLOUD_PROFILE": "ci"}, ini(INI_AK + INI_AK.replace(
        "default", "ci").replace("LTAIiniKeyId00001", "LTAIciKeyId000001"))),
    "ini-file-env": ({"ALIBABA_CLOUD_CREDENTIALS_FILE": "{home}/elsewhere.ini"},
                     ini(INI_AK, "elsewhere.ini")),
    "ini-inline-comments": ({}, ini("[default]\ntype = access_key # t\naccess_key_id = LTAIcomment0001 # c\n"
                                    "access_key_secret = sec#ret\n")),
    "ini-ram-role-arn": ({}, ini(f"[default]\ntype = ram_role_arn\naccess_key_id = {DEV['access_key_id']}\n"
                                 f"access_key_secret = {DEV['access_key_secret']}\nrole_arn = {ROLE_ARN}\n"
                                 "role_session_name = s4\n")),
    "ini-ecs-ram-role": (ECS_ON, ini(f"[default]\ntype = ecs_ram_role\nrole_name = {ROLE}\n")),
    "ini-oidc-role-arn": ({}, ini(f"[default]\ntype = oidc_role_arn\nrole_arn = {ROLE_ARN}\n"
                                  f"oidc_provider_arn = {PROVIDER}\n"
                                  "oidc_token_file_path = {home}/oidc-token\n"
                                  "role_session_name = s5\n")),
    "ini-missing-section": ({"ALIBABA_CLOUD_PROFILE": "nope"}, ini(INI_AK)),
    "rrsa": (RRSA, {}),
    "rrsa-session-name": ({**RRSA, "ALIBABA_CLOUD_ROLE_SESSION_NAME": "nightly"}, {}),
    "rrsa-partial-nothing-else": ({k: v for k, v in RRSA.items() if k != "ALIBABA_CLOUD_ROLE_ARN"}, {}),
    "env-wins-over-rrsa": ({**AK, **RRSA}, {}),
    "rrsa-wins-over-cli": (RRSA, cli([ak_profile()])),
    "ecs-named-role": ({**ECS_ON, "ALIBABA_CLOUD_ECS_METADATA": ROLE}, {}),
    "ecs-discovered-role": (ECS_ON, {}),
    "ecs-imdsv1-disabled": ({**ECS_ON, "ALIBABA_CLOUD_IMDSV1_DISABLED": "true"}, {}),
    "uri": ({"ALIBABA_CLOUD_CREDENTIALS_URI": "{uri}/creds"}, {}),
    "cli-cloudsso-then-ini": ({}, {**cli([{"name": "default", "mode": "CloudSSO"}]), **ini(INI_AK)}),
    "cli-ramrolearn-refused-then-ini": ({}, {**cli([{"name": "default", "mode": "RamRoleArn", **DEV,
                                                     "ram_role_arn": "not-an-arn"}]), **ini(INI_AK)}),
    "ini-percent-secret": ({}, ini(INI_AK.replace("ini-secret", "in%i-secret"))),
    "env-padded-values": ({"ALIBABA_CLOUD_ACCESS_KEY_ID": " LTAIpadded00001 ",
                           "ALIBABA_CLOUD_ACCESS_KEY_SECRET": " padded "}, {}),
    "profile-empty-string": ({"ALIBABA_CLOUD_PROFILE": ""}, {**cli([ak_profile()], current="default")}),
    "cli-wins-over-uri": ({"ALIBABA_CLOUD_CREDENTIALS_URI": "{uri}/creds"}, cli([ak_profile()])),
}

DELIBERATE: dict[str, str] = {
    "cli-cloudsso-then-ini": "the chosen profile's mode is one we do not support: we stop with an error "
                             "naming the mode instead of silently signing with the next source's keys",
    "cli-ramrolearn-refused-then-ini": "a configured source that fails (STS refused the role) stops with "
                                       "STS's reason; the library falls through and signs with other keys",
    "ini-percent-secret": "the library parses the INI with %-interpolation, so a secret holding '%' "
                          "fails there; we read values literally (a secret may hold any character)",
}
"""Configurations where we differ from the library on purpose: name -> why."""


def _expand(text: str, home: Path, fakes_url: str) -> str:
    return text.replace("{home}", str(home)).replace("{uri}", fakes_url)


def _kind(result: dict[str, Any]) -> Any:
    if not result["ok"]:
        return "error"
    if result["id"].startswith("STS.") and result["id"] not in (ECS_ANSWER["AccessKeyId"],
                                                                 URI_ANSWER["AccessKeyId"]):
        # Fresh from the simulator's STS: different every call; compare the kind.
        return ("sts", bool(result["token"]))
    return (result["id"], result["secret"], result["token"])


def _ours(env: dict[str, str], home: Path) -> dict[str, Any]:
    try:
        creds = resolve_credentials(env, home)
    except CredentialsError as exc:
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "id": creds.access_key_id, "secret": creds.access_key_secret,
            "token": creds.security_token}


def test_our_chain_matches_the_official_library(tmp_path: Path) -> None:
    """At least 30 configurations; every one resolves alike or is a listed deliberate difference."""
    assert len(CONFIGS) >= 30
    with SimProcess() as sim, CredentialFakes(None, static=ECS_ANSWER) as ecs, \
            CredentialFakes(None, static=URI_ANSWER) as uri:
        prepared = []
        for name, (env, files) in CONFIGS.items():
            home = tmp_path / name
            home.mkdir()
            (home / TOKEN_FILE).write_text("oidc-oracle-token", encoding="utf-8")
            for rel, text in files.items():
                (home / rel).parent.mkdir(parents=True, exist_ok=True)
                (home / rel).write_text(_expand(text, home, uri.url), encoding="utf-8")
            prepared.append((name, home, {k: _expand(v, home, uri.url) for k, v in env.items()}))
        request = {
            "redirect": {"100.100.100.200": ecs.url, "sts": sim.url},
            "configs": [{"home": str(home), "env": {"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true", **env}}
                        for _, home, env in prepared]}
        child = subprocess.run([sys.executable, str(Path(__file__).with_name("oracle_credentials_child.py"))],
                               input=json.dumps(request), capture_output=True, text=True, timeout=150,
                               check=False)
        assert child.returncode == 0, child.stderr[-3000:]
        theirs = json.loads(child.stdout.strip().splitlines()[-1])
        ours = [_ours({**LOOPBACK_GUARD, "ALIBABA_CLOUD_STS_ENDPOINT": sim.url,
                       "ENS_MIGRATE_ECS_METADATA_ENDPOINT": ecs.url, **env}, home)
                for _, home, env in prepared]
    assert urlsplit(sim.url).hostname == "127.0.0.1"
    differ = {name: (_kind(o), _kind(t)) for (name, _, _), o, t in zip(prepared, ours, theirs, strict=True)
              if _kind(o) != _kind(t)}
    unexpected = {name: d for name, d in differ.items() if name not in DELIBERATE}
    assert not unexpected, json.dumps(unexpected, indent=1, default=str)
    stale = sorted(set(DELIBERATE) - set(differ))
    assert not stale, f"listed as deliberate but now the same: {stale}"
