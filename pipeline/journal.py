"""The journal file: exclusive lock, torn-tail repair, replay, and the group-commit writer task."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pipeline import records
from pipeline.errors import JournalError, JournalLocked
from pipeline.replay import Ledger, fold

_FILE_MODE = 0o600


def lock_path(path: Path) -> Path:
    """The lock file beside a journal."""
    return path.with_name(path.name + ".lock")


def acquire_lock(path: Path) -> int:
    """Take the journal's exclusive lock (``fcntl.flock``) and write our PID; return the fd."""
    lpath = lock_path(path)
    try:
        lpath.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lpath, os.O_RDWR | os.O_CREAT, _FILE_MODE)
    except OSError as exc:
        # mkdir(exist_ok=True) on a path that is a file says only "File exists".
        why = ("it is a file, not a directory" if exc.errno == errno.EEXIST and lpath.parent.exists()
               else exc.strerror)
        where = lpath.parent if exc.errno == errno.EEXIST else lpath
        raise JournalError(f"cannot create the journal lock {lpath}: {where}: {why}; "
                           "choose a writable directory with --journal") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        raise JournalLocked(str(path), holder) from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError as exc:
        os.close(fd)
        hint = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
        raise JournalError(f"cannot write the journal lock {lpath}: {hint}; free space or choose "
                           "another location with --journal") from exc
    return fd


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip() or "0") or None
    return None


def repair_tail(path: Path) -> int:
    """Truncate a torn last line (a crash mid-write) away; return how many bytes were dropped."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return 0
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return 0
        pos = size
        chunk = 4096
        while pos > 0:
            start = max(0, pos - chunk)
            data = os.pread(fd, pos - start, start)
            nl = data.rfind(b"\n")
            if nl != -1:
                keep = start + nl + 1
                break
            pos = start
        else:
            keep = 0
        if keep != size:
            os.ftruncate(fd, keep)
            os.fsync(fd)
        return size - keep
    finally:
        os.close(fd)


def _decode(raw: bytes) -> Any:
    """One line (UTF-8, ending in a newline) to its JSON value; ValueError when it is not JSON.

    orjson parses the bytes directly, 3-4x faster than json's scanner: the fold of a
    1,000,000-record journal spends most of its time here. (orjson.JSONDecodeError is a ValueError.)
    """
    return orjson.loads(raw)


_PARAMS = b',"params":{'
_PARAMS_END = b"}}\n"


def _without_params(raw: bytes) -> bytes:
    """The line with its trailing ``params`` object cut off, when it is last (the writer puts it
    last); the byte pattern cannot occur inside a JSON string, where quotes are escaped."""
    at = raw.find(_PARAMS)
    if at == -1 or not raw.endswith(_PARAMS_END):
        return raw
    return raw[:at] + b"}\n"


def iter_records(path: Path, *, skip_params: bool = False) -> Iterator[dict[str, Any]]:
    """Decode a journal line by line; a corrupt line (not the torn tail) is a JournalError.

    ``skip_params`` leaves job parameters out (most of an attempt record's bytes) for a fold
    that does not keep them.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise JournalError(f"cannot read journal {path}: {exc.strerror}") from exc
    with handle:
        for number, raw in enumerate(handle, 1):
            if not raw.endswith(b"\n"):
                return  # torn tail: ignored
            try:
                rec = _decode(_without_params(raw) if skip_params else raw)
            except ValueError:
                raise JournalError(
                    f"{path}:{number}: not a journal record (corrupt line); move the file aside "
                    "or repair that line"
                ) from None
            if not isinstance(rec, dict):
                raise JournalError(f"{path}:{number}: not a journal record (not a JSON object)")
            yield rec


def read_ledger(path: Path, *, keep_params: bool = False, detail: bool = False) -> Ledger:
    """Fold a journal file (read-only; no lock needed) into its ledger; ``detail`` keeps every
    RequestId and first-seen time (a run needs neither)."""
    # Folding allocates a few long-lived objects per job and nothing cyclic: the cyclic GC would
    # walk the growing ledger again and again (a third of the fold's time on 1,000,000 records).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return fold(iter_records(path, skip_params=not keep_params), keep_params=keep_params,
                    detail=detail)
    finally:
        if gc_was_enabled:
            gc.enable()


@dataclass(frozen=True, slots=True)
class _Entry:
    line: bytes
    done: anyio.Event | None


class JournalWriter:
    """The single task that owns appends. ``append`` queues; ``append_durable`` waits for fsync.

    Group commit: the writer drains every record queued meanwhile into one write and one fsync,
    so durability costs each request some latency but the run no throughput.
    """

    def __init__(self, path: Path, *, buffer: int = 4096) -> None:
        self.path = path
        self._fd = -1
        send, receive = anyio.create_memory_object_stream[_Entry](buffer)
        self._send: MemoryObjectSendStream[_Entry] = send
        self._receive: MemoryObjectReceiveStream[_Entry] = receive
        self.fsyncs = 0
        self.written = 0

    def open(self) -> None:
        """Open for appending (creating it 0600); fail clearly before anything is sent."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _FILE_MODE)
        except OSError as exc:
            raise JournalError(
                f"cannot open journal {self.path} for writing: {exc.strerror}; "
                "choose a writable location with --journal"
            ) from exc

    async def append(self, event: str, key: str | None, fields: Mapping[str, Any]) -> None:
        """Queue a record; it reaches the OS soon, the disk with the next group fsync."""
        await self._send.send(_Entry(records.encode(event, key, fields), None))

    async def append_durable(self, event: str, key: str | None, fields: Mapping[str, Any]) -> None:
        """Queue a record and return only once it is on disk (fsync)."""
        done = anyio.Event()
        await self._send.send(_Entry(records.encode(event, key, fields), done))
        await done.wait()

    def close_input(self) -> None:
        """No more records: the writer drains what is queued, fsyncs and returns."""
        self._send.close()

    async def run(self) -> None:
        """The writer loop; returns after ``close_input`` once everything is written and synced."""
        try:
            async with self._receive:
                async for first in self._receive:
                    batch = [first]
                    while True:
                        try:
                            batch.append(self._receive.receive_nowait())
                        except (anyio.WouldBlock, anyio.EndOfStream):
                            break
                    await self._write(batch)
        finally:
            if self._fd >= 0:
                with contextlib.suppress(OSError):
                    os.fsync(self._fd)

    async def _write(self, batch: list[_Entry]) -> None:
        data = b"".join(e.line for e in batch)
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            if any(e.done is not None for e in batch):
                await anyio.to_thread.run_sync(os.fsync, self._fd)
                self.fsyncs += 1
        except OSError as exc:
            hint = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
            raise JournalError(f"cannot write journal {self.path}: {hint}; the run stops here "
                               "and resumes from the journal once fixed") from exc
        self.written += len(batch)
        for e in batch:
            if e.done is not None:
                e.done.set()

    def close(self) -> None:
        """Close the file descriptor (after ``run`` returned) and the queue, whether it ran or not."""
        # A writer that never ran (open failed) or died mid-run still holds its stream pair.
        self._send.close()
        self._receive.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
