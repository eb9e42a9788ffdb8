"""The duplicate-name index: where each ImageName of a job list was first seen, in bounded memory."""

from __future__ import annotations

import bisect
from array import array


class NameIndex:
    """Where each ImageName was first seen, in 12 bytes per table slot (17-34 bytes per name).

    A ``dict[str, int]`` of a million names costs over 100 MB; this keeps a 64-bit hash and a
    32-bit position in two arrays with open addressing. The position counts lines across all
    files, each file starting after the last line recorded from the one before. Two different
    names share a hash with probability ~n²/2⁶⁵ (3e-8 for a million names): then the later one
    is reported as a duplicate it is not.
    """

    def __init__(self) -> None:
        self._keys = array("Q", [0]) * 1024
        self._where = array("I", [0]) * 1024
        self._count = 0
        self._starts: list[int] = []
        self._sources: list[str] = []
        self._last = 0

    def __len__(self) -> int:
        return self._count

    def first_seen(self, name: str, source: str, line: int) -> tuple[str, int] | None:
        """Record ``name`` at ``source:line``; if seen before, return the first place and keep it.

        Calls come file by file, lines increasing within a file.
        """
        # Python's str hash: 64-bit SipHash computed in C, and cached on the str.
        key = hash(name) & 0xFFFFFFFFFFFFFFFF or 1
        slot = self._slot(self._keys, key)
        if self._keys[slot]:
            where = self._where[slot]
            file = bisect.bisect_right(self._starts, where - 1) - 1
            return self._sources[file], where - self._starts[file]
        if not self._sources or self._sources[-1] != source:
            self._starts.append(self._last)
            self._sources.append(source)
        self._last = self._starts[-1] + line
        self._keys[slot] = key
        self._where[slot] = self._last
        self._count += 1
        if self._count * 10 > len(self._keys) * 7:
            self._grow()
        return None

    @staticmethod
    def _slot(keys: array[int], key: int) -> int:
        mask = len(keys) - 1
        slot = key & mask
        while keys[slot] and keys[slot] != key:
            slot = (slot + 1) & mask
        return slot

    def _grow(self) -> None:
        keys, where = self._keys, self._where
        self._keys = array("Q", [0]) * (2 * len(keys))
        self._where = array("I", [0]) * (2 * len(keys))
        for old, key in enumerate(keys):
            if key:
                slot = self._slot(self._keys, key)
                self._keys[slot] = key
                self._where[slot] = where[old]
