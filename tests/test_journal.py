"""The journal file: one run per journal (lock), torn-tail repair, replay, group-commit writer."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from pipeline.errors import JournalError, JournalLocked
from pipeline.journal import records as r
from pipeline.journal.ledger import JobState
from pipeline.journal.lock import acquire_lock, lock_path
from pipeline.journal.reader import iter_records, read_ledger, repair_tail
from pipeline.journal.writer import JournalWriter

REPO = Path(__file__).resolve().parents[1]


def line(event: str = r.JOB_ATTEMPT, key: str = "k", **fields: object) -> bytes:
    return r.encode(event, key, fields, ts="2026-01-01T00:00:00.000Z")


# --- lock ----------------------------------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from pipeline.journal.lock import acquire_lock
    acquire_lock(Path(sys.argv[1]))
    print("locked", flush=True)
    sys.stdin.read()
""")


def test_lock_held_by_another_process(tmp_path: Path) -> None:
    """While another process holds the lock, acquiring it raises JournalLocked naming that
    process's PID (exit code 75); once it exits the lock is free again."""
    journal = tmp_path / "run.journal.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(journal)], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(JournalLocked) as info:
            acquire_lock(journal)
        assert info.value.pid == proc.pid
        assert info.value.exit_code == 75
        assert str(proc.pid) in str(info.value)
        assert "--journal" in str(info.value)
    finally:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.close()
        proc.wait(timeout=10)
        proc.stdout.close()
    fd = acquire_lock(journal)
    os.close(fd)


def test_lock_file_beside_journal_holds_our_pid(tmp_path: Path) -> None:
    """The lock is a file beside the journal, 0600, containing the holder's PID."""
    journal = tmp_path / "a.jsonl"
    fd = acquire_lock(journal)
    try:
        assert lock_path(journal) == tmp_path / "a.jsonl.lock"
        assert lock_path(journal).read_text() == f"{os.getpid()}\n"
        assert stat.S_IMODE(lock_path(journal).stat().st_mode) == 0o600
    finally:
        os.close(fd)


def test_lock_exclusive_within_one_process(tmp_path: Path) -> None:
    """Two acquisitions of the same journal exclude each other even in one process."""
    journal = tmp_path / "a.jsonl"
    fd = acquire_lock(journal)
    try:
        with pytest.raises(JournalLocked):
            acquire_lock(journal)
    finally:
        os.close(fd)


def test_lock_shared_through_a_symlink(tmp_path: Path) -> None:
    """A journal reached through a symlink (or another spelling of its path) shares the lock of
    the file it points to: a second run is refused, not let in beside the first (D3)."""
    real = tmp_path / "real" / "run.jsonl"
    real.parent.mkdir()
    link = tmp_path / "link.jsonl"
    link.symlink_to(real)
    fd = acquire_lock(real)
    try:
        with pytest.raises(JournalLocked):
            acquire_lock(link)
        with pytest.raises(JournalLocked):
            acquire_lock(tmp_path / "real" / ".." / "real" / "run.jsonl")
        assert lock_path(link) == lock_path(real)
    finally:
        os.close(fd)


def test_lock_in_impossible_place(tmp_path: Path) -> None:
    """A lock that cannot be created is a JournalError, not a traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(JournalError, match="lock"):
        acquire_lock(blocker / "j.jsonl")


# --- torn tail and replay ------------------------------------------------------------------------


def test_repair_truncates_torn_tail(tmp_path: Path) -> None:
    """A last line without its newline (crash mid-write) is cut off; whole lines stay."""
    journal = tmp_path / "j.jsonl"
    good = line(attempt=1) + line(r.JOB_IMPORTED, image_id="m-1")
    journal.write_bytes(good + b'{"v":1,"ev')
    assert repair_tail(journal) == len(b'{"v":1,"ev')
    assert journal.read_bytes() == good


def test_repair_long_torn_tail(tmp_path: Path) -> None:
    """A torn line longer than the read chunk is still cut back to the previous newline."""
    journal = tmp_path / "j.jsonl"
    good = line(attempt=1)
    journal.write_bytes(good + b"x" * 10_000)
    assert repair_tail(journal) == 10_000
    assert journal.read_bytes() == good


@pytest.mark.parametrize(("content", "kept"), [
    (b"", b""),
    (b"partial", b""),
    (b'{"a":1}\n', b'{"a":1}\n'),
])
def test_repair_edge_cases(tmp_path: Path, content: bytes, kept: bytes) -> None:
    """Empty and intact files are left alone; a file of one torn line becomes empty."""
    journal = tmp_path / "j.jsonl"
    journal.write_bytes(content)
    repair_tail(journal)
    assert journal.read_bytes() == kept


def test_repair_missing_file(tmp_path: Path) -> None:
    """A journal that does not exist yet needs no repair."""
    assert repair_tail(tmp_path / "none.jsonl") == 0


def test_iter_records_ignores_torn_tail(tmp_path: Path) -> None:
    """Reading without repairing skips the torn last line instead of failing."""
    journal = tmp_path / "j.jsonl"
    journal.write_bytes(line(attempt=1) + b'{"v":1,"ev')
    assert [rec["event"] for rec in iter_records(journal)] == [r.JOB_ATTEMPT]


def test_corrupt_middle_line_names_the_line(tmp_path: Path) -> None:
    """A corrupt complete line is an error naming file and line, never silently skipped."""
    journal = tmp_path / "j.jsonl"
    journal.write_bytes(line(attempt=1) + b"garbage\n" + line(attempt=2))
    with pytest.raises(JournalError, match=rf"{journal}:2: not a journal record"):
        list(iter_records(journal))


def test_non_object_line_is_an_error(tmp_path: Path) -> None:
    """A complete line that is JSON but not an object is corrupt too."""
    journal = tmp_path / "j.jsonl"
    journal.write_bytes(line() + b"[1,2]\n")
    with pytest.raises(JournalError, match=r":2: .*not a JSON object"):
        list(iter_records(journal))


def test_missing_journal_reads_empty(tmp_path: Path) -> None:
    """A journal that does not exist is an empty ledger (first run)."""
    assert read_ledger(tmp_path / "none.jsonl").jobs == {}


def test_read_ledger_folds_file(tmp_path: Path) -> None:
    """``read_ledger`` folds the whole file into per-job state."""
    journal = tmp_path / "j.jsonl"
    journal.write_bytes(line(key="a", attempt=1) + line(key="b", attempt=1)
                        + line(r.JOB_IMPORTED, key="a", image_id="m-1"))
    ledger = read_ledger(journal)
    assert ledger.jobs["a"].state is JobState.IMPORTED
    assert ledger.jobs["b"].state is JobState.IN_DOUBT


# --- writer --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_append_durable_returns_after_fsync(tmp_path: Path) -> None:
    """``append_durable`` returns only once its record is written and fsynced."""
    async with JournalWriter(tmp_path / "j.jsonl").running() as writer:
        assert writer.fsyncs == 0
        await writer.append_durable(r.JOB_ATTEMPT, "a", {"attempt": 1})
        assert writer.fsyncs == 1
        assert json.loads(writer.path.read_bytes())["key"] == "a"


@pytest.mark.asyncio
async def test_plain_append_does_not_fsync_each_record(tmp_path: Path) -> None:
    """Outcome records are queued and written without an fsync each."""
    async with JournalWriter(tmp_path / "j.jsonl").running() as writer:
        for i in range(50):
            await writer.append(r.JOB_IMPORTED, f"k{i}", {"image_id": f"m-{i}"})
    assert writer.fsyncs == 0
    assert writer.written == 50
    assert len(writer.path.read_bytes().splitlines()) == 50


@pytest.mark.asyncio
async def test_group_commit(tmp_path: Path) -> None:
    """Many concurrent durable appends share fsyncs: fewer fsyncs than records, none lost."""
    async with JournalWriter(tmp_path / "j.jsonl").running() as writer, \
            anyio.create_task_group() as appenders:
        for i in range(200):
            appenders.start_soon(writer.append_durable, r.JOB_ATTEMPT, f"k{i}", {"attempt": 1})
    keys = {json.loads(raw)["key"] for raw in writer.path.read_bytes().splitlines()}
    assert keys == {f"k{i}" for i in range(200)}
    assert 1 <= writer.fsyncs < 200


@pytest.mark.asyncio
async def test_writer_keeps_order(tmp_path: Path) -> None:
    """Records reach the file in the order they were queued."""
    async with JournalWriter(tmp_path / "j.jsonl").running() as writer:
        for i in range(30):
            if i % 7 == 0:
                await writer.append_durable(r.JOB_ATTEMPT, "k", {"attempt": i})
            else:
                await writer.append(r.JOB_ERROR, "k", {"attempt": i})
    assert [json.loads(x)["attempt"] for x in writer.path.read_bytes().splitlines()] == list(range(30))


@pytest.mark.asyncio
async def test_running_raises_the_body_error_itself_after_draining(tmp_path: Path) -> None:
    """An error in the body is raised as itself once queued records are on disk."""
    path = tmp_path / "j.jsonl"

    async def body() -> None:
        async with JournalWriter(path).running() as writer:
            await writer.append(r.JOB_IMPORTED, "k", {"image_id": "m-1"})
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await body()
    assert [json.loads(x)["key"] for x in path.read_bytes().splitlines()] == ["k"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.asyncio
async def test_running_writer_failure_cancels_the_body() -> None:
    """A writer that fails cancels the body at once: nothing after the failed append runs."""
    reached = []

    async def body() -> None:
        async with JournalWriter(Path("/dev/full")).running() as writer:
            await writer.append_durable(r.JOB_ATTEMPT, "k", {"attempt": 1})
            reached.append("after")

    with pytest.raises(JournalError):
        await body()
    assert reached == []


def test_journal_file_mode_0600(tmp_path: Path) -> None:
    """A new journal is created readable by its owner only."""
    old = os.umask(0)
    try:
        writer = JournalWriter(tmp_path / "sub" / "j.jsonl")
        writer.open()
        writer.close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "sub" / "j.jsonl").stat().st_mode) == 0o600


def test_unwritable_location_fails_at_open(tmp_path: Path) -> None:
    """A journal that cannot be created fails in ``open`` (before anything is sent), naming the
    path and the fix. (Tests may run as root, where a chmod-ed directory stays writable; a
    regular file in the parent's place is unwritable for everyone.)"""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    writer = JournalWriter(blocker / "j.jsonl")
    with pytest.raises(JournalError, match=r"cannot open journal .*--journal"):
        writer.open()
    writer.close()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.asyncio
async def test_disk_full_is_a_journal_error(tmp_path: Path) -> None:
    """A failing write (disk full) ends the writer with a JournalError saying so, raised alone
    (not inside an ExceptionGroup): the command line turns it into exit 2 with the message."""
    with pytest.raises(JournalError, match="disk is full"):
        async with JournalWriter(Path("/dev/full")).running() as writer:
            await writer.append_durable(r.JOB_ATTEMPT, "k", {"attempt": 1})


@pytest.mark.asyncio
async def test_unknown_value_fails_before_queueing(tmp_path: Path) -> None:
    """A record that cannot be encoded fails in the caller, at write time; nothing is written."""
    async with JournalWriter(tmp_path / "j.jsonl").running() as writer:
        with pytest.raises(TypeError):
            await writer.append(r.JOB_FAILED, "k", {"message": object()})
    assert writer.path.read_bytes() == b""
