"""Alibaba Cloud credentials: the official SDK's default chain, resolved once from env and files."""

from __future__ import annotations

import configparser
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import CredentialsError

ENV_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
ENV_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"
ENV_PROFILE = "ALIBABA_CLOUD_PROFILE"
ENV_CLI_DISABLED = "ALIBABA_CLOUD_CLI_PROFILE_DISABLED"
ENV_CREDENTIALS_FILE = "ALIBABA_CLOUD_CREDENTIALS_FILE"
OIDC_VARIABLES = (
    "ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
)

SUPPORTED_HINT = (
    f"set {ENV_ID} and {ENV_SECRET} (plus {ENV_TOKEN} for STS), run `aliyun configure` "
    "(mode AK or StsToken), or write an access_key section to ~/.alibabacloud/credentials.ini"
)


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """An AccessKey pair, optionally with an STS token; printing it never shows the secrets."""

    access_key_id: str
    access_key_secret: str
    security_token: str | None = None
    source: str = "static"
    """Where the chain found them, for messages: ``environment``, ``cli profile 'x' (path)``..."""

    @property
    def masked_id(self) -> str:
        """The AccessKeyId with its middle hidden: ``LTAI****abcd``."""
        key = self.access_key_id
        return f"{key[:4]}****{key[-4:]}" if len(key) >= 12 else "****"

    def __repr__(self) -> str:
        token = ", security_token=****" if self.security_token else ""
        return f"Credentials(access_key_id={self.masked_id!r}{token}, source={self.source!r})"

    __str__ = __repr__


def resolve_credentials(env: Mapping[str, str], home: Path) -> Credentials:
    """Walk the SDK's chain: environment, aliyun CLI profile, credentials.ini; first found wins.

    Raise ``CredentialsError`` (exit 2) listing everything tried when nothing yields a pair, or
    naming the mode/type when the chosen profile uses a kind of credentials not supported yet.
    """
    tried: list[str] = []
    for source in (_from_env, _from_cli_profile, _from_ini):
        found = source(env, home, tried)
        if found is not None:
            return found
    listing = "; ".join(tried)
    raise CredentialsError(
        f"no Alibaba Cloud credentials found (tried: {listing}); {SUPPORTED_HINT}", tried=tuple(tried)
    )


def _from_env(env: Mapping[str, str], home: Path, tried: list[str]) -> Credentials | None:
    key_id, secret = env.get(ENV_ID, ""), env.get(ENV_SECRET, "")
    if key_id and secret:
        return Credentials(key_id, secret, env.get(ENV_TOKEN) or None, "environment")
    if key_id or secret:
        missing = ENV_SECRET if key_id else ENV_ID
        tried.append(f"environment: {missing} is empty")
    else:
        tried.append(f"environment: {ENV_ID}/{ENV_SECRET} not set")
    # The SDK's next link is OIDC (RRSA); silently skipping it would pick other credentials.
    if all(env.get(name) for name in OIDC_VARIABLES):
        raise CredentialsError(
            f"OIDC role credentials ({', '.join(OIDC_VARIABLES)}) are not supported yet; "
            f"{SUPPORTED_HINT}",
            tried=tuple(tried),
        )
    return None


def _from_cli_profile(env: Mapping[str, str], home: Path, tried: list[str]) -> Credentials | None:
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
    profile = next(
        (p for p in profiles if isinstance(p, dict) and p.get("name") == name),
        None,
    ) if isinstance(profiles, list) else None
    if profile is None:
        tried.append(f"{path}: no profile named {name!r}")
        return None
    mode = profile.get("mode")
    where = f"{path} profile {name!r}"
    if mode not in ("AK", "StsToken"):
        raise CredentialsError(
            f"{where}: mode {mode!r} is not supported yet (supported: AK, StsToken); "
            f"choose another profile with {ENV_PROFILE}, or {SUPPORTED_HINT}",
            tried=(*tried, f"{where}: mode {mode!r}"),
        )
    key_id, secret = _text(profile.get("access_key_id")), _text(profile.get("access_key_secret"))
    token = _text(profile.get("sts_token")) if mode == "StsToken" else ""
    if not key_id or not secret or (mode == "StsToken" and not token):
        tried.append(f"{where} (mode {mode}): access_key_id, access_key_secret or sts_token is empty")
        return None
    return Credentials(key_id, secret, token or None, f"aliyun CLI {where}")


def _from_ini(env: Mapping[str, str], home: Path, tried: list[str]) -> Credentials | None:
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
    where = f"{path} [{section_name}]"
    if kind != "access_key":
        raise CredentialsError(
            f"{where}: type {kind!r} is not supported yet (supported: access_key); "
            f"choose another section with {ENV_PROFILE}, or {SUPPORTED_HINT}",
            tried=(*tried, f"{where}: type {kind!r}"),
        )
    key_id, secret = section.get("access_key_id", ""), section.get("access_key_secret", "")
    if not key_id or not secret:
        tried.append(f"{where}: access_key_id or access_key_secret is empty")
        return None
    return Credentials(key_id, secret, None, f"credentials file {where}")


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
