"""The group-commit writer: the single task that appends journal records and fsyncs them."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from pipeline.errors import JournalError
from pipeline.journal import records

_FILE_MODE = 0o600


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

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[JournalWriter]:
        """Open the journal, run the writer task beside the body, then drain, fsync and close.

        A writer that fails (disk full) cancels the body at once, since no request may leave
        without its write-ahead record, and its JournalError is raised alone; an error of the
        body is raised as itself (not in a task-group ExceptionGroup) once the queue is drained.
        """
        failure: list[JournalError] = []
        body_error: Exception | None = None
        try:
            self.open()
            async with anyio.create_task_group() as tg:
                async def keep() -> None:
                    try:
                        await self.run()
                    except JournalError as exc:
                        failure.append(exc)
                        tg.cancel_scope.cancel()

                tg.start_soon(keep)
                try:
                    yield self
                except Exception as exc:  # re-raised below, once the writer has drained
                    body_error = exc
                finally:
                    self.close_input()
        finally:
            self.close()
        if failure:
            raise failure[0]
        if body_error is not None:
            raise body_error

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
