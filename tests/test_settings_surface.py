"""Configuration of issue #13: [retry]/[breaker] take effect, unknown ENS_MIGRATE_* variables are
named with the closest setting, every setting has a flag and ``--help`` names its variable."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline.settings import RunSettings, env_name, unknown_env
from tests.run_helpers import SimProcess, cli, import_requests, run_against, write_jobs


def test_retry_max_attempts_in_the_config_is_obeyed(tmp_path: Path) -> None:
    """``[retry] max_attempts = 1`` made 6 attempts: it was accepted and ignored."""
    jobs, journal, config = tmp_path / "jobs.csv", tmp_path / "j.jsonl", tmp_path / "c.toml"
    write_jobs(jobs, 3)
    config.write_text("[retry]\nmax_attempts = 1\n", encoding="utf-8")
    with SimProcess("--fault", "error503=1") as sim:
        code, err = run_against(sim, jobs, journal, "--config", str(config))
        assert code == 1, err
        assert import_requests(sim) == 3


def test_an_unknown_ens_migrate_variable_is_named_with_the_closest_setting() -> None:
    warnings = unknown_env({"ENS_MIGRATE_RATEE": "5", "ENS_MIGRATE_RATE": "5", "PATH": "/bin"})
    assert len(warnings) == 1
    assert "ENS_MIGRATE_RATEE is not an ens-migrate setting" in warnings[0]
    assert "did you mean ENS_MIGRATE_RATE?" in warnings[0]
    assert unknown_env({"ENS_MIGRATE_ECS_METADATA_ENDPOINT": "http://127.0.0.1:1"}) == []


def test_the_run_warns_on_stderr_about_a_misspelt_variable(tmp_path: Path) -> None:
    write_jobs(tmp_path / "jobs.csv", 2)
    result = cli("run", str(tmp_path / "jobs.csv"), "--journal", str(tmp_path / "j.jsonl"), "--dry-run",
                 env={"ENS_MIGRATE_CONCURENCY": "4"})
    assert result.returncode == 0, result.stderr
    assert "ENS_MIGRATE_CONCURENCY" in result.stderr
    assert "did you mean ENS_MIGRATE_CONCURRENCY?" in result.stderr


@pytest.mark.parametrize("setting", [f.name for f in dataclasses.fields(RunSettings)])
def test_every_setting_has_a_flag_whose_help_names_its_variable(setting: str) -> None:
    from pipeline.cli.run import run

    flag = f"--{setting.replace('_', '-')}"
    (option,) = [p for p in run.params if flag in getattr(p, "opts", ())]
    assert f"[env: {env_name(setting)}]" in (option.help or "")


def test_run_help_names_the_variables() -> None:
    result = cli("run", "--help")
    assert "ENS_MIGRATE_LOOKUP_RATE" in result.stdout
    assert "--breaker-streak" in result.stdout
