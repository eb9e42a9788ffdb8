"""The credentials chain, in the official SDK's default order (shared/docs/ens-api.md §7.2):

environment AK/STS → RRSA/OIDC environment → ~/.aliyun/config.json profile →
~/.alibabacloud/credentials.ini section → ECS instance RAM role → ALIBABA_CLOUD_CREDENTIALS_URI.

The first source that is configured wins. A configured source that fails stops with its reason
(the SDK would go on down the chain and maybe sign with other credentials); only the ECS metadata
service, which is tried without being configured, is passed over when it does not answer.
"""

from __future__ import annotations

import configparser
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from pipeline.ens import sts
from pipeline.ens.credentials import (
    Credentials,
    CredentialSource,
    Fetch,
    RefreshingCredentials,
    StaticCredentials,
)
from pipeline.ens.imds import ENV_DISABLED, ENV_ROLE, ENV_URI, EcsRoleFetcher, UriFetcher
from pipeline.errors import CredentialsError

ENV_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"
ENV_PROFILE = "ALIBABA_CLOUD_PROFILE"
ENV_CLI_DISABLED = "ALIBABA_CLOUD_CLI_PROFILE_DISABLED"
ENV_CREDENTIALS_FILE = "ALIBABA_CLOUD_CREDENTIALS_FILE"
ENV_ROLE_ARN = "ALIBABA_CLOUD_ROLE_ARN"
ENV_OIDC_PROVIDER = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN"
ENV_OIDC_TOKEN_FILE = "ALIBABA_CLOUD_OIDC_TOKEN_FILE"
ENV_SESSION = "ALIBABA_CLOUD_ROLE_SESSION_NAME"
OIDC_VARIABLES = (ENV_ROLE_ARN, ENV_OIDC_PROVIDER, ENV_OIDC_TOKEN_FILE)
CLI_MODES = ("AK", "StsToken", "RamRoleArn", "EcsRamRole", "OIDC", "ChainableRamRoleArn")
INI_TYPES = ("access_key", "ram_role_arn", "ecs_ram_role", "oidc_role_arn")

SUPPORTED_HINT = (
    f"set {ENV_ID} and {ENV_SECRET} (plus {ENV_TOKEN} for STS), set the RRSA variables "
    f"({', '.join(OIDC_VARIABLES)}), run `aliyun configure`, write ~/.alibabacloud/credentials.ini, "
    f"run on ECS with a RAM role attached, or set {ENV_URI}"
)


async def resolve_source(env: Mapping[str, str], home: Path) -> CredentialSource:
    """Walk the chain; return the first configured source, its first credentials fetched.

    Raise ``CredentialsError`` (exit 2) listing everything tried when nothing is configured, or
    naming the source and its reason when the configured one does not work.
    """
    tried: list[str] = []
    for link in (_from_env, _from_oidc_env, _from_cli_profile, _from_ini):
        found = link(env, home, tried)
        if found is not None:
            return await _loaded(found)
    if env.get(ENV_DISABLED, "").strip().lower() == "true":
        tried.append(f"ECS instance RAM role: disabled by {ENV_DISABLED}=true")
    else:
        ecs = EcsRoleFetcher(env, env.get(ENV_ROLE, "").strip() or None)
        source = RefreshingCredentials(ecs, description=ecs.description)
        try:
            await source.load()
        except CredentialsError as exc:
            tried.append(f"ECS instance RAM role: {exc}")
        else:
            return source
    uri = env.get(ENV_URI, "").strip()
    if uri:
        fetcher = UriFetcher(uri)
        return await _loaded(RefreshingCredentials(fetcher, description=fetcher.description))
    tried.append(f"credentials URI: {ENV_URI} not set")
    listing = "; ".join(tried)
    raise CredentialsError(
        f"no Alibaba Cloud credentials found (tried: {listing}); {SUPPORTED_HINT}", tried=tuple(tried))


async def _loaded(source: CredentialSource) -> CredentialSource:
    if isinstance(source, RefreshingCredentials):
        await source.load()
    return source


# -- environment ---------------------------------------------------------------------------------

def _from_env(env: Mapping[str, str], home: Path, tried: list[str]) -> CredentialSource | None:
    key_id, secret = env.get(ENV_ID, ""), env.get(ENV_SECRET, "")
    if key_id and secret:
        return StaticCredentials(Credentials(key_id, secret, env.get(ENV_TOKEN) or None, "environment"))
    if key_id or secret:
        tried.append(f"environment: {ENV_SECRET if key_id else ENV_ID} is empty")
    else:
        tried.append(f"environment: {ENV_ID}/{ENV_SECRET} not set")
    return None


def _from_oidc_env(env: Mapping[str, str], home: Path, tried: list[str]) -> CredentialSource | None:
    values = [env.get(name, "").strip() for name in OIDC_VARIABLES]
    if not all(values):
        tried.append(f"RRSA: {', '.join(OIDC_VARIABLES)} not all set")
        return None
    role_arn, provider_arn, token_file = values
    role = sts.RoleRequest(role_arn, env.get(ENV_SESSION, "").strip() or sts.default_session_name())
    return oidc_source(env, role, provider_arn, Path(token_file), "RRSA (environment)")


def oidc_source(env: Mapping[str, str], role: sts.RoleRequest, provider_arn: str, token_file: Path,
                where: str, *, region: str | None = None, vpc: bool | None = None) -> RefreshingCredentials:
    """AssumeRoleWithOIDC with the token file read afresh at every renewal (the kubelet rotates it)."""
    endpoint = sts.sts_endpoint(env, region=region, vpc=vpc)

    async def fetch() -> Credentials:
        try:
            token = (await anyio.Path(token_file).read_text(encoding="utf-8")).strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CredentialsError(f"{where}: cannot read the OIDC token file {token_file} "
                                   f"({type(exc).__name__})") from None
        if not token:
            raise CredentialsError(f"{where}: the OIDC token file {token_file} is empty")
        return await sts.assume_role_with_oidc(endpoint, role=role, provider_arn=provider_arn, token=token)

    return RefreshingCredentials(fetch, description=f"{where}: OIDC role {role.role_arn}")


def assume_role_source(env: Mapping[str, str], base: CredentialSource, role: sts.RoleRequest, where: str,
                       *, region: str | None = None, vpc: bool | None = None) -> RefreshingCredentials:
    """AssumeRole signed with ``base``'s current credentials at every renewal."""
    endpoint = sts.sts_endpoint(env, region=region, vpc=vpc)

    async def fetch() -> Credentials:
        return await sts.assume_role(endpoint, await base.get(), role)

    return RefreshingCredentials(fetch, description=f"{where}: RAM role {role.role_arn}")


def ecs_source(env: Mapping[str, str], role: str | None) -> RefreshingCredentials:
    """The instance RAM role (named, or discovered from the metadata service)."""
    fetcher: Fetch = EcsRoleFetcher(env, role)
    return RefreshingCredentials(fetcher, description=EcsRoleFetcher(env, role).description)


# -- ~/.aliyun/config.json -----------------------------------------------------------------------

def _from_cli_profile(env: Mapping[str, str], home: Path, tried: list[str]) -> CredentialSource | None:
    path = home / ".aliyun" / "config.json"
    if env.get(ENV_CLI_DISABLED, "").lower() == "true":
        tried.append(f"aliyun CLI profile: disabled by {ENV_CLI_DISABLED}=true")
        return None
    config = _read_json(path, tried)
    if config is None:
        return None
    name = env.get(ENV_PROFILE) or config.get("current")
    if not name:
        tried.append(f"{path}: no profile chosen ({ENV_PROFILE} unset, no 'current')")
        return None
    profiles = config.get("profiles")
    listed = profiles if isinstance(profiles, list) else []
    by_name = {p.get("name"): p for p in listed if isinstance(p, dict)}
    if name not in by_name:
        tried.append(f"{path}: no profile named {name!r}")
        return None
    return _cli_profile(env, path, by_name, str(name), tried, depth=0)


def _cli_profile(env: Mapping[str, str], path: Path, by_name: Mapping[Any, dict[str, Any]], name: str,
                 tried: list[str], *, depth: int) -> CredentialSource | None:
    profile = by_name[name]
    mode = profile.get("mode") or "AK"
    where = f"aliyun CLI {path} profile {name!r}"
    if mode not in CLI_MODES:
        raise _unsupported(where, "mode", mode, CLI_MODES, "profile", tried)
    text = {k: _text(v) for k, v in profile.items()}
    region, vpc = text.get("sts_region") or None, profile.get("enable_vpc") is True or None
    role = sts.RoleRequest(text.get("ram_role_arn", ""),
                           text.get("ram_session_name") or text.get("role_session_name")
                           or sts.default_session_name(),
                           _duration(profile.get("expired_seconds")), text.get("policy") or None,
                           text.get("external_id") or None)
    if mode == "EcsRamRole":
        return ecs_source(env, text.get("ram_role_name") or None)
    if mode == "OIDC":
        _require(where, mode, text, ("ram_role_arn", "oidc_provider_arn", "oidc_token_file"))
        return oidc_source(env, role, text["oidc_provider_arn"], Path(text["oidc_token_file"]), where,
                           region=region, vpc=vpc)
    if mode == "ChainableRamRoleArn":
        _require(where, mode, text, ("source_profile", "ram_role_arn"))
        source_name = text["source_profile"]
        if source_name not in by_name or depth > 5:
            raise CredentialsError(f"{where}: source_profile {source_name!r} is not a profile of {path}")
        base = _cli_profile(env, path, by_name, source_name, tried, depth=depth + 1)
        if base is None:
            raise CredentialsError(f"{where}: its source_profile {source_name!r} gives no credentials")
        return assume_role_source(env, base, role, where, region=region, vpc=vpc)
    key_id, secret = text.get("access_key_id", ""), text.get("access_key_secret", "")
    token = text.get("sts_token", "") if mode == "StsToken" else ""
    if not key_id or not secret or (mode == "StsToken" and not token):
        tried.append(f"{where} (mode {mode}): access_key_id, access_key_secret or sts_token is empty")
        return None
    pair = StaticCredentials(Credentials(key_id, secret, token or None, where))
    if mode == "RamRoleArn":
        _require(where, mode, text, ("ram_role_arn",))
        return assume_role_source(env, pair, role, where, region=region, vpc=vpc)
    return pair


# -- ~/.alibabacloud/credentials.ini ---------------------------------------------------------------

def _from_ini(env: Mapping[str, str], home: Path, tried: list[str]) -> CredentialSource | None:
    named = env.get(ENV_CREDENTIALS_FILE)
    path = Path(named) if named else home / ".alibabacloud" / "credentials.ini"
    section_name = env.get(ENV_PROFILE) or "default"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as stream:
            parser.read_file(stream)
    except FileNotFoundError:
        tried.append(f"{path}: no such file")
        return None
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        tried.append(f"{path}: unreadable ({type(exc).__name__})")
        return None
    if not parser.has_section(section_name):
        tried.append(f"{path}: no section [{section_name}]")
        return None
    # Like the SDK: a value ends at the first '#' (inline comment).
    section = {k: v.split("#", 1)[0].strip() for k, v in parser.items(section_name)}
    kind = section.get("type")
    where = f"credentials file {path} [{section_name}]"
    if kind not in INI_TYPES:
        raise _unsupported(where, "type", kind, INI_TYPES, "section", tried)
    role = sts.RoleRequest(section.get("role_arn", ""),
                           section.get("role_session_name") or sts.default_session_name(),
                           policy=section.get("policy") or None)
    if kind == "ecs_ram_role":
        return ecs_source(env, section.get("role_name") or None)
    if kind == "oidc_role_arn":
        _require(where, kind, section, ("role_arn", "oidc_provider_arn", "oidc_token_file_path"))
        return oidc_source(env, role, section["oidc_provider_arn"], Path(section["oidc_token_file_path"]),
                           where)
    key_id, secret = section.get("access_key_id", ""), section.get("access_key_secret", "")
    if not key_id or not secret:
        tried.append(f"{where}: access_key_id or access_key_secret is empty")
        return None
    pair = StaticCredentials(Credentials(key_id, secret, None, where))
    if kind == "ram_role_arn":
        _require(where, kind, section, ("role_arn",))
        return assume_role_source(env, pair, role, where)
    return pair


def _require(where: str, mode: str, values: Mapping[str, str], names: tuple[str, ...]) -> None:
    missing = [n for n in names if not values.get(n)]
    if missing:
        raise CredentialsError(f"{where}: {mode} needs {', '.join(missing)}")


def _duration(value: object) -> int:
    try:
        seconds = int(str(value)) if value not in (None, "", 0) else sts.DEFAULT_DURATION
    except ValueError:
        return sts.DEFAULT_DURATION
    return max(seconds, sts.MIN_DURATION)


def _read_json(path: Path, tried: list[str]) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        tried.append(f"{path}: no such file")
        return None
    except (OSError, ValueError) as exc:
        tried.append(f"{path}: unreadable ({type(exc).__name__})")
        return None
    if not isinstance(data, dict):
        tried.append(f"{path}: not a JSON object")
        return None
    return data


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _unsupported(where: str, what: str, value: object, supported: tuple[str, ...], entry: str,
                 tried: list[str]) -> CredentialsError:
    """A profile mode or section type we do not resolve: name it, the supported ones and the way out."""
    return CredentialsError(
        f"{where}: {what} {value!r} is not supported (supported: {', '.join(supported)}); choose "
        f"another {entry} with --profile or {ENV_PROFILE}, or {SUPPORTED_HINT}",
        tried=(*tried, f"{where}: {what} {value!r}"))
