"""Keeping the simulator's images in a JSON state file: atomic writes, debounced off the hot path."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import anyio

from pipeline.simulator.images import ImageStore


def write_atomic(path: Path, blob: bytes) -> None:
    """Replace ``path`` with ``blob`` so a reader sees the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_into(store: ImageStore, path: Path) -> None:
    """Fill ``store`` from ``path`` when it exists."""
    if path.exists():
        store.load(path.read_bytes())


class Persister:
    """Writes the store when it changed, at most once per ``interval``, the file I/O in a thread."""

    def __init__(self, store: ImageStore, path: Path, interval: float) -> None:
        self._store = store
        self._path = path
        self._interval = interval
        self._saved = store.version

    @property
    def dirty(self) -> bool:
        """Changes not on disk yet."""
        return self._store.version != self._saved

    async def flush(self) -> None:
        """Write now if anything changed."""
        if not self.dirty:
            return
        version = self._store.version
        blob = self._store.dump()
        await anyio.to_thread.run_sync(write_atomic, self._path, blob)
        self._saved = version

    def flush_sync(self) -> None:
        """Write now, blocking (for shutdown outside a running loop)."""
        if self.dirty:
            version = self._store.version
            write_atomic(self._path, self._store.dump())
            self._saved = version

    async def run(self) -> None:
        """Flush every ``interval`` while changes keep coming; cancel to stop (then ``flush``)."""
        while True:
            await anyio.sleep(self._interval)
            await self.flush()
