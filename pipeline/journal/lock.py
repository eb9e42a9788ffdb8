"""One run per journal: an exclusive ``flock`` on a lock file beside the journal, holding our PID."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from pipeline.errors import JournalError, JournalLocked

_FILE_MODE = 0o600


def lock_path(path: Path) -> Path:
    """The lock file beside the journal's resolved path: a symlink, a relative spelling or a
    ``..`` detour to the same file all share one lock (design.md §4.5)."""
    real = path.resolve()
    return real.with_name(real.name + ".lock")


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
