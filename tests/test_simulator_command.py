"""``ens-migrate simulator`` in a subprocess: the first line names the URL, signals exit 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_util.models import RuntimeOptions
from darabonba.exceptions import UnretryableException

from pipeline.simulator import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET
from tests.client_fixtures import sdk_client_in
from tests.simulator_fixtures import RUNTIME, sdk_client, sdk_import_request

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"ENS simulator listening on https?://127\.0\.0\.1:(\d+)")
CA_LINE = re.compile(r"TLS CA file: (\S+) ")
ENTRY = "from pipeline.simulator.command import simulator; simulator()"


@contextmanager
def running(
    *args: str, env: dict[str, str] | None = None,
) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """Start the command; yield it, its ``host:port`` and its banner once the banner is printed."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    environ.update(env or {})
    proc = subprocess.Popen(
        [sys.executable, "-c", ENTRY, *args], cwd=ROOT, env=environ, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        match = LISTENING.fullmatch(first.rstrip("\n"))
        assert match, (first, proc.stderr.read() if proc.stderr else "")
        banner = [first]
        while not banner[-1].startswith("Seed ") and banner[-1]:
            banner.append(proc.stdout.readline())
        yield proc, f"127.0.0.1:{match.group(1)}", "".join(banner)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serves_the_sdk_and_exits_zero_on_signal(sig: signal.Signals) -> None:
    """It accepts the printed development pair, then SIGINT/SIGTERM stops it with exit code 0."""
    with running("--port", "0", "--quota", "0") as (proc, endpoint, banner):
        client = sdk_client(endpoint, key_id=DEV_ACCESS_KEY_ID, secret=DEV_ACCESS_KEY_SECRET)
        assert client.import_image_with_options(sdk_import_request(), RUNTIME).body.image_id
        proc.send_signal(sig)
        proc.communicate(timeout=10)
        assert proc.returncode == 0
    assert DEV_ACCESS_KEY_SECRET in banner
    assert "development pair" in banner


def test_uses_the_environment_key_pair_and_never_prints_its_secret() -> None:
    """With ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET set, that pair is accepted and the dev pair is not."""
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIenvkey", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "env-secret-value"}
    with running("--deny-all", env=env) as (proc, endpoint, banner):
        with pytest.raises(ClientException) as denied:
            sdk_client(endpoint, key_id="LTAIenvkey", secret="env-secret-value").import_image_with_options(
                sdk_import_request(), RUNTIME)
        with pytest.raises(ClientException) as unknown:
            sdk_client(endpoint).import_image_with_options(sdk_import_request(), RUNTIME)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 0
    assert "LTAIenvkey" in banner
    assert denied.value.code == "NoPermission"
    assert unknown.value.code == "InvalidAccessKeyId.NotFound"
    assert "env-secret-value" not in banner + out


def test_bad_fault_is_a_usage_error() -> None:
    """An unknown fault name exits 2 with a message naming the valid ones."""
    result = subprocess.run(
        [sys.executable, "-c", ENTRY, "--fault", "meteor=0.1"], cwd=ROOT, capture_output=True, text=True,
        timeout=30, check=False,
    )
    assert result.returncode == 2
    assert "error500" in result.stderr


def test_tls_serves_https_to_the_sdk_trusting_the_printed_ca() -> None:
    """--tls: an https URL and a CA file; the official SDK left on https, given that CA, imports.

    The temporary certificate folder goes when the simulator stops.
    """
    with running("--tls") as (proc, endpoint, banner):
        assert "listening on https://" in banner
        found = CA_LINE.search(banner)
        assert found, banner
        ca_file = Path(found.group(1))
        assert ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
        # Untrusted first: the SDK pools one session per host, and a verified connection is reused.
        with pytest.raises(UnretryableException, match=r"(?i)certificate verify failed"):
            sdk_client_in("v3", endpoint, protocol="https").import_image_with_options(
                sdk_import_request("untrusted"), RuntimeOptions())
        for mode in ("v3", "v2"):
            client = sdk_client_in(mode, endpoint, protocol="https")
            imported = client.import_image_with_options(sdk_import_request(f"tls-{mode}"),
                                                        RuntimeOptions(ca=str(ca_file)))
            assert imported.body.image_id.startswith("m-")
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
        assert proc.returncode == 0
    assert not ca_file.parent.exists()


def test_tls_dir_keeps_the_certificate(tmp_path: Path) -> None:
    """--tls-dir DIR: the CA, chain and key are written there and stay after exit."""
    with running("--tls", "--tls-dir", str(tmp_path / "tls")) as (proc, _, banner):
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert str(tmp_path / "tls" / "simulator-ca.pem") in banner
    assert sorted(p.name for p in (tmp_path / "tls").iterdir()) == [
        "simulator-ca.pem", "simulator-cert.pem", "simulator-key.pem"]
    assert (tmp_path / "tls" / "simulator-key.pem").stat().st_mode & 0o077 == 0


def test_sts_token_from_the_environment_is_required() -> None:
    """ALIBABA_CLOUD_SECURITY_TOKEN set: a client without that token is refused (MissingSecurityToken)."""
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "STS.envkey", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "sts-secret",
           "ALIBABA_CLOUD_SECURITY_TOKEN": "sts-token"}
    with running(env=env) as (proc, endpoint, banner):
        with pytest.raises(ClientException) as refused:
            sdk_client(endpoint, key_id="STS.envkey", secret="sts-secret").import_image_with_options(
                sdk_import_request(), RUNTIME)
        client = sdk_client(endpoint, key_id="STS.envkey", secret="sts-secret", security_token="sts-token")
        accepted = client.import_image_with_options(sdk_import_request(), RUNTIME)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    assert refused.value.code == "MissingSecurityToken"
    assert accepted.body.image_id.startswith("m-")
    assert "STS token required" in banner
    assert "sts-token" not in banner
