"""Configuration errors: exit 2, one message naming the setting (and where it came from) and the
fix, no traceback, and nothing sent. Credentials are looked for nowhere else than we say: HOME is
tmp_path and every ALIBABA_CLOUD_* variable is empty. The CLI runs forked (``cli_forked``: its own
process, environment and exit status, without the interpreter's start-up).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.run_helpers import Result, SimProcess, cli_forked

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    """One simulator: a configuration error must never reach it."""
    with SimProcess() as process:
        yield process


@pytest.fixture
def jobs(tmp_path: Path) -> Path:
    """A valid one-row job list."""
    path = tmp_path / "jobs.csv"
    path.write_text("ImageName,OSSBucket,OSSObject\nok-img,b,o.qcow2\n", encoding="utf-8")
    return path


def _run(sim: SimProcess, jobs: Path, *args: str, env: dict[str, str] | None = None,
         endpoint: str | None = None) -> Result:
    return cli_forked("run", str(jobs), "--endpoint", endpoint or sim.url, "--journal",
               str(jobs.with_suffix(".jsonl")), *args, env=env)


def _assert_usage_error(result: Result, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("ens-migrate: error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("command", ["run", "validate"])
def test_malformed_toml_names_the_file_and_the_place(tmp_path: Path, sim: SimProcess, jobs: Path,
                                                     command: str) -> None:
    """A TOML syntax error: exit 2, the file, line and column, for run and validate alike."""
    config = _config(tmp_path, "[run\nrate = 5\n")
    result = (_run(sim, jobs, "--config", str(config)) if command == "run"
              else cli_forked("validate", str(jobs), "--config", str(config)))
    _assert_usage_error(result, str(config), "not valid TOML", "line 1")
    assert sim.stats()["requests_total"] == 0


@pytest.mark.parametrize(("text", "needles"), [
    ("[run]\nratez = 5\n", ("[run]", "ratez", "valid keys", "rate")),
    ("[bogus]\nx = 1\n", ("[bogus]", "valid sections")),
    ("[rules]\nColour = [\"red\"]\n", ("[rules]", "Colour", "valid keys")),
], ids=["run-key", "section", "rules-key"])
def test_unknown_keys_are_named_with_the_valid_ones(tmp_path: Path, sim: SimProcess, jobs: Path, text: str,
                                                    needles: tuple[str, ...]) -> None:
    """An unknown key or section: exit 2 naming it and listing what is valid; nothing sent."""
    result = _run(sim, jobs, "--config", str(_config(tmp_path, text)))
    _assert_usage_error(result, *needles)
    assert sim.stats()["requests_total"] == 0


@pytest.mark.parametrize(("source", "value"), [("flag", "0"), ("flag", "-1"), ("env", "0"), ("env", "-5"),
                                               ("config", "0"), ("config", "-2.5"), ("config", "inf")])
def test_a_rate_that_is_not_positive_and_finite_is_refused_where_it_came_from(
        tmp_path: Path, sim: SimProcess, jobs: Path, source: str, value: str) -> None:
    """--rate, ENS_MIGRATE_RATE or [run] rate at 0 or below (or infinite): exit 2 naming that source
    and the rule ("above 0"); nothing sent."""
    if source == "flag":
        result = _run(sim, jobs, "--rate", value)
        origin = "--rate"
    elif source == "env":
        result = _run(sim, jobs, env={"ENS_MIGRATE_RATE": value})
        origin = "ENS_MIGRATE_RATE"
    else:
        result = _run(sim, jobs, "--config", str(_config(tmp_path, f"[run]\nrate = {value}\n")))
        origin = "[run]"
    _assert_usage_error(result, origin, "rate", "above 0")
    assert sim.stats()["requests_total"] == 0


def test_an_ftp_endpoint_is_refused_naming_the_schemes_that_work(sim: SimProcess, jobs: Path) -> None:
    """--endpoint ftp://...: exit 2, the scheme named, https:// offered."""
    result = _run(sim, jobs, endpoint="ftp://ens.example.com")
    _assert_usage_error(result, "ftp", "https://")


def test_an_endpoint_in_the_config_file_is_checked_too(tmp_path: Path, jobs: Path) -> None:
    """[run] endpoint = "ftp://...": the same refusal as the flag."""
    config = _config(tmp_path, '[run]\nendpoint = "ftp://ens.example.com"\n')
    result = cli_forked("run", str(jobs), "--config", str(config), "--journal", str(tmp_path / "j.jsonl"))
    _assert_usage_error(result, "ftp", "https://")


def test_plain_http_to_a_remote_host_needs_the_explicit_flag(sim: SimProcess, jobs: Path) -> None:
    """http:// to a non-loopback host: exit 2, and the message names the flag that allows it."""
    result = _run(sim, jobs, endpoint="http://ens.example.com")
    _assert_usage_error(result, "http://", "loopback", "--insecure-http")


def test_missing_credentials_list_what_was_tried_and_how_to_fix_it(tmp_path: Path, sim: SimProcess,
                                                                     jobs: Path) -> None:
    """No env pair, no ~/.aliyun/config.json, no credentials.ini: exit 2, each place tried named,
    and the variables to set; nothing sent."""
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "ALIBABA_CLOUD_ACCESS_KEY_ID": "", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "",
           "ALIBABA_CLOUD_SECURITY_TOKEN": "", "ALIBABA_CLOUD_CLI_PROFILE_DISABLED": "",
           "ALIBABA_CLOUD_CREDENTIALS_FILE": "", "ALIBABA_CLOUD_PROFILE": ""}
    result = _run(sim, jobs, env=env)
    _assert_usage_error(result, "no Alibaba Cloud credentials", f"{home}/.aliyun/config.json",
                        f"{home}/.alibabacloud/credentials.ini", "ALIBABA_CLOUD_ACCESS_KEY_ID")
    assert sim.stats()["requests_total"] == 0


def test_half_a_key_pair_names_the_missing_half(sim: SimProcess, jobs: Path, tmp_path: Path) -> None:
    """Only the AccessKeyId set: exit 2 saying the secret variable is empty."""
    env = {"HOME": str(tmp_path), "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ""}
    result = _run(sim, jobs, env=env)
    _assert_usage_error(result, "ALIBABA_CLOUD_ACCESS_KEY_SECRET is empty")
