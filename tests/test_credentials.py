"""The credentials chain: environment, aliyun CLI profile, credentials.ini, in the SDK's order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from pipeline.ens.credentials import (
    Credentials,
    RefreshingCredentials,
    StaticCredentials,
    resolve_credentials,
)
from pipeline.errors import CredentialsError, CredentialsExpired
from tests.loopback import LOOPBACK_GUARD

SECRET = "SuperSecretValue0123456789"
TOKEN = "StsTokenValueXYZ"
KEY_ID = "LTAI5tAbCdEfGh1234"
ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET}


def resolve(env: dict[str, str], home: Path) -> Credentials:
    """The chain with the loopback guard (no metadata service, STS on a dead loopback port)."""
    return resolve_credentials({**LOOPBACK_GUARD, **env}, home)


def write_cli_config(home: Path, profiles: list[dict[str, str]], current: str = "default") -> Path:
    path = home / ".aliyun" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"current": current, "profiles": profiles}), encoding="utf-8")
    return path


def write_ini(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def ak_profile(name: str, key_id: str = KEY_ID, secret: str = SECRET) -> dict[str, str]:
    return {"name": name, "mode": "AK", "access_key_id": key_id, "access_key_secret": secret}


def test_environment_pair(tmp_path: Path) -> None:
    """ALIBABA_CLOUD_ACCESS_KEY_ID and _SECRET give static credentials."""
    creds = resolve(ENV, tmp_path)
    assert (creds.access_key_id, creds.access_key_secret, creds.security_token) == (KEY_ID, SECRET, None)
    assert creds.source == "environment"


def test_environment_security_token(tmp_path: Path) -> None:
    """ALIBABA_CLOUD_SECURITY_TOKEN joins the environment pair as an STS token."""
    creds = resolve({**ENV, "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN}, tmp_path)
    assert creds.security_token == TOKEN


def test_environment_wins_over_files(tmp_path: Path) -> None:
    """The environment comes first in the chain, before the CLI profile and the INI file."""
    write_cli_config(tmp_path, [ak_profile("default", "LTAIfromCliFile99")])
    write_ini(tmp_path / ".alibabacloud" / "credentials.ini",
              "[default]\ntype = access_key\naccess_key_id = LTAIfromIniFile99\naccess_key_secret = x\n")
    assert resolve(ENV, tmp_path).access_key_id == KEY_ID


def test_half_set_environment_falls_through(tmp_path: Path) -> None:
    """An id without a secret is not used; the chain goes on to the files."""
    write_cli_config(tmp_path, [ak_profile("default")])
    creds = resolve({"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIonlyTheId000"}, tmp_path)
    assert creds.access_key_id == KEY_ID


def test_cli_profile_current(tmp_path: Path) -> None:
    """~/.aliyun/config.json's ``current`` profile in AK mode is used."""
    write_cli_config(tmp_path, [ak_profile("other", "LTAIotherProfile1"), ak_profile("default")])
    creds = resolve({}, tmp_path)
    assert creds.access_key_id == KEY_ID
    assert "'default'" in creds.source


def test_cli_profile_switch(tmp_path: Path) -> None:
    """ALIBABA_CLOUD_PROFILE picks the CLI profile instead of ``current``."""
    write_cli_config(tmp_path, [ak_profile("default"), ak_profile("prod", "LTAIprodProfile12")])
    creds = resolve({"ALIBABA_CLOUD_PROFILE": "prod"}, tmp_path)
    assert creds.access_key_id == "LTAIprodProfile12"


def test_cli_profile_sts_token(tmp_path: Path) -> None:
    """A StsToken profile gives its sts_token as the security token."""
    write_cli_config(tmp_path, [{**ak_profile("default"), "mode": "StsToken", "sts_token": TOKEN}])
    assert resolve({}, tmp_path).security_token == TOKEN


def test_cli_profile_unsupported_mode(tmp_path: Path) -> None:
    """A profile in a mode we do not support is a clear error naming the mode, not a fall-through."""
    write_cli_config(tmp_path, [{"name": "default", "mode": "CloudSSO", "access_key_id": KEY_ID,
                                 "access_key_secret": SECRET}])
    write_ini(tmp_path / ".alibabacloud" / "credentials.ini",
              "[default]\ntype = access_key\naccess_key_id = LTAIfromIniFile99\naccess_key_secret = x\n")
    with pytest.raises(CredentialsError, match="mode 'CloudSSO' is not supported") as info:
        resolve({}, tmp_path)
    assert info.value.exit_code == 2
    assert SECRET not in str(info.value)


def test_cli_profile_disabled(tmp_path: Path) -> None:
    """ALIBABA_CLOUD_CLI_PROFILE_DISABLED=true skips the CLI file even when it is usable."""
    write_cli_config(tmp_path, [ak_profile("default")])
    write_ini(tmp_path / ".alibabacloud" / "credentials.ini",
              "[default]\ntype = access_key\naccess_key_id = LTAIfromIniFile99\naccess_key_secret = x\n")
    creds = resolve({"ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "TRUE"}, tmp_path)
    assert creds.access_key_id == "LTAIfromIniFile99"


def test_ini_default_section_with_inline_comments(tmp_path: Path) -> None:
    """~/.alibabacloud/credentials.ini [default] with type access_key; values end at ``#``."""
    write_ini(tmp_path / ".alibabacloud" / "credentials.ini",
              f"[default]\ntype = access_key  # static\naccess_key_id = {KEY_ID} # mine\n"
              f"access_key_secret = {SECRET}#comment\n")
    creds = resolve({}, tmp_path)
    assert (creds.access_key_id, creds.access_key_secret) == (KEY_ID, SECRET)


def test_ini_file_and_section_from_environment(tmp_path: Path) -> None:
    """ALIBABA_CLOUD_CREDENTIALS_FILE names the file and ALIBABA_CLOUD_PROFILE the section."""
    path = write_ini(tmp_path / "elsewhere.ini",
                     "[default]\ntype = access_key\naccess_key_id = LTAIdefaultSect1\naccess_key_secret = a\n"
                     "[ci]\ntype = access_key\naccess_key_id = LTAIciSection1234\naccess_key_secret = b%c\n")
    creds = resolve(
        {"ALIBABA_CLOUD_CREDENTIALS_FILE": str(path), "ALIBABA_CLOUD_PROFILE": "ci"}, tmp_path
    )
    assert (creds.access_key_id, creds.access_key_secret) == ("LTAIciSection1234", "b%c")


def test_ini_unsupported_type(tmp_path: Path) -> None:
    """An INI section of another type is a clear error naming the type."""
    write_ini(tmp_path / ".alibabacloud" / "credentials.ini",
              "[default]\ntype = rsa_key_pair\npublic_key_id = r\n")
    with pytest.raises(CredentialsError, match="type 'rsa_key_pair' is not supported"):
        resolve({}, tmp_path)


def test_nothing_found_lists_what_was_tried(tmp_path: Path) -> None:
    """With no source at all, the error says what was tried and how to fix it (exit 2)."""
    with pytest.raises(CredentialsError) as info:
        resolve({}, tmp_path)
    error = info.value
    assert error.exit_code == 2
    assert len(error.tried) == 6
    assert str(tmp_path / ".aliyun" / "config.json") in str(error)
    assert str(tmp_path / ".alibabacloud" / "credentials.ini") in str(error)
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in str(error)


def test_missing_named_profile_is_reported(tmp_path: Path) -> None:
    """A profile name that the CLI file does not have is passed over and reported."""
    write_cli_config(tmp_path, [ak_profile("default")])
    with pytest.raises(CredentialsError, match="no profile named 'nope'"):
        resolve({"ALIBABA_CLOUD_PROFILE": "nope"}, tmp_path)


def test_broken_cli_file_is_passed_over(tmp_path: Path) -> None:
    """A CLI config that is not JSON is skipped (as the SDK does) and named in the error."""
    (tmp_path / ".aliyun").mkdir()
    (tmp_path / ".aliyun" / "config.json").write_text(f'{{"secret": "{SECRET}",', encoding="utf-8")
    with pytest.raises(CredentialsError, match="unreadable") as info:
        resolve({}, tmp_path)
    assert SECRET not in str(info.value)


def test_oidc_environment_is_not_silently_skipped(tmp_path: Path) -> None:
    """OIDC role variables (the SDK's second link) are used: an unreadable token file is named."""
    env = {"ALIBABA_CLOUD_ROLE_ARN": "acs:ram::1:role/r", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": "p",
           "ALIBABA_CLOUD_OIDC_TOKEN_FILE": "/var/run/token"}
    with pytest.raises(CredentialsError, match="cannot read the OIDC token file /var/run/token"):
        resolve(env, tmp_path)


def test_repr_and_str_hide_the_secrets() -> None:
    """repr/str/format never show the secret or token, and the key id only masked."""
    creds = Credentials(KEY_ID, SECRET, TOKEN, "environment")
    for text in (repr(creds), str(creds), f"{creds}", f"{creds!r}"):
        assert SECRET not in text
        assert TOKEN not in text
        assert KEY_ID not in text
        assert "LTAI****1234" in text


def test_masked_id() -> None:
    """masked_id keeps four characters at each end; a short id is fully hidden."""
    assert Credentials("LTAI5tAbCdEfabcd", "s").masked_id == "LTAI****abcd"
    assert Credentials("short", "s").masked_id == "****"


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _issuer(clock: _Clock, lifetime: float, fail: list[bool]) -> tuple[Any, list[int]]:
    calls: list[int] = []

    async def fetch() -> Credentials:
        calls.append(1)
        await anyio.sleep(0)
        if fail and fail[0]:
            raise CredentialsError("STS is down")
        n = len(calls)
        return Credentials(f"STS.key{n:08d}", f"secret-{n}", f"token-{n}", "test role",
                           expiration=clock.now + lifetime, obtained=clock.now)

    return fetch, calls


def test_renewal_margin_is_min_of_15_minutes_and_a_third() -> None:
    """An hour's credentials are not used in their last 15 minutes; 30 s ones not in their last 10 s."""
    hour = Credentials("a", "b", "c", expiration=3600.0, obtained=0.0)
    assert hour.usable(3600 - 901)
    assert not hour.usable(3600 - 899)
    short = Credentials("a", "b", "c", expiration=30.0, obtained=0.0)
    assert short.usable(19.9)
    assert not short.usable(20.1)
    assert short.due(10.1)
    assert not short.due(9.9)


def test_one_renewal_for_many_waiters_and_backoff_while_still_valid() -> None:
    """Fifty workers needing fresh credentials cause one fetch; a failed renewal keeps the current
    credentials (retried after a backoff, not at every call); past the last usable moment the
    failure is CredentialsExpired (exit 3), not a job failure."""
    clock = _Clock()
    fail = [False]
    fetch, calls = _issuer(clock, 30.0, fail)
    source = RefreshingCredentials(fetch, description="test role", clock=clock)

    async def scenario() -> None:
        first = await source.load()
        assert len(calls) == 1
        clock.now += 11  # due (after 10 s), still usable (until 20 s)
        got: list[Credentials] = []
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(lambda: _append(got, source))
        assert len(calls) == 2
        assert {c.access_key_id for c in got} == {"STS.key00000002"}
        assert source.refreshes == 1
        clock.now += 11
        fail[0] = True
        assert await source.get() is got[0]  # renewal failed, current still usable
        assert len(calls) == 3
        assert await source.get() is got[0]  # backing off: no new fetch yet
        assert len(calls) == 3
        clock.now += 9  # past usable (20 s after the second issue)
        with pytest.raises(CredentialsExpired, match="expired and could not be renewed"):
            await source.get()
        assert first.access_key_id == "STS.key00000001"

    anyio.run(scenario)


async def _append(out: list[Credentials], source: RefreshingCredentials) -> None:
    out.append(await source.get())


def test_a_stale_answer_renews_once_and_a_static_token_cannot() -> None:
    """renew() after ENS called the token stale fetches anew; StaticCredentials raises
    CredentialsExpired naming the fix."""
    clock = _Clock()
    fetch, calls = _issuer(clock, 3600.0, [])
    source = RefreshingCredentials(fetch, description="test role", clock=clock)

    async def scenario() -> None:
        first = await source.load()
        fresh = await source.renew(first, "InvalidSecurityToken.Expired")
        assert fresh.access_key_id != first.access_key_id
        assert await source.renew(first, "InvalidSecurityToken.Expired") is fresh  # already renewed
        assert len(calls) == 2
        static = StaticCredentials(Credentials(KEY_ID, SECRET, TOKEN, "environment"))
        with pytest.raises(CredentialsExpired, match="ALIBABA_CLOUD_SECURITY_TOKEN") as info:
            await static.renew(await static.get(), "InvalidSecurityToken.Expired")
        assert info.value.exit_code == 3
        assert SECRET not in str(info.value)
        assert TOKEN not in str(info.value)

    anyio.run(scenario)
