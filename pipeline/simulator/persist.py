"""Keeping the simulator's images in a JSON state file: atomic writes, debounced off the hot path."""

from __future__ import annotations

from pathlib import Path

import anyio

from pipeline.files import write_atomic
from pipeline.simulator.images import ImageStore


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
