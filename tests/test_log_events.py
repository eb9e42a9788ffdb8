"""Log events: stable dotted names with the sentence in ``message`` and the data in fields."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from pipeline.journal.writer import JournalWriter
from pipeline.log import configure_logging
from tests.fakes import PERMANENT, FakeEns, make_ctx, make_job, run_migration

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline"
LEVELS = {"debug", "info", "warning", "error", "exception", "critical"}


def _log_calls() -> list[tuple[str, int, ast.Call]]:
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in LEVELS and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "log"):
                calls.append((str(path.relative_to(PACKAGE)), node.lineno, node))
    return calls


def test_every_log_call_names_a_stable_event_and_says_a_sentence() -> None:
    """Each ``log.<level>(...)`` in the package names its event as a literal
    ``ens_migrate.<area>.<what>`` and carries the sentence for people in ``message``."""
    calls = _log_calls()
    assert len(calls) >= 15
    for where, line, call in calls:
        name = call.args[0] if call.args else None
        assert isinstance(name, ast.Constant), f"{where}:{line}"
        assert isinstance(name.value, str), f"{where}:{line}"
        parts = name.value.split(".")
        assert parts[0] == "ens_migrate", f"{where}:{line}: {name.value}"
        assert len(parts) == 3, f"{where}:{line}: {name.value}"
        assert all(p and p.replace("_", "").isalpha() and p.islower() for p in parts), name.value
        assert "message" in {k.arg for k in call.keywords}, f"{where}:{line}: no message="


@pytest.mark.asyncio
async def test_a_failed_job_logs_its_event_with_code_and_request_id(tmp_path: Path) -> None:
    """A job ENS refuses logs ``ens_migrate.job.failed`` with the job, code, error and RequestId."""
    api = FakeEns()
    job = make_job("centos-7")
    api.script(job.name, PERMANENT)
    with capture_logs() as logs:
        await run_migration(make_ctx(api, JournalWriter(tmp_path / "j.jsonl")), [job])
    failed = [e for e in logs if e["event"] == "ens_migrate.job.failed"]
    assert len(failed) == 1
    assert failed[0]["log_level"] == "warning"
    assert (failed[0]["job"], failed[0]["code"], failed[0]["request_id"]) == (
        "centos-7", "InvalidParameter", "req-1")
    assert failed[0]["message"] == "job failed"
    assert failed[0]["error"]


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_console_shows_the_sentence_json_keeps_name_and_sentence(
        fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    """People read the sentence on the console; JSON lines carry the event name and the message."""
    try:
        configure_logging(fmt=fmt)
        structlog.get_logger("t").warning("ens_migrate.run.draining", message="draining now",
                                          signal="SIGTERM")
    finally:
        configure_logging(fmt="console")  # takes the JSON handler of library records off again
        structlog.reset_defaults()
    err = capsys.readouterr().err.strip()
    if fmt == "json":
        doc = json.loads(err)
        assert (doc["event"], doc["message"], doc["signal"]) == ("ens_migrate.run.draining", "draining now",
                                                                 "SIGTERM")
    else:
        assert "draining now" in err
        assert "signal=SIGTERM" in err
        assert "ens_migrate.run.draining" not in err
