"""Cached-key lookup in about 20 bytes of RAM per key: sorted 16-byte keys and np.searchsorted.

A Python set of the keys of a large cache costs over 100 bytes per key; 100M cached texts
would need more than 10 GB just to tell which texts are new. Each set segment stores its keys
sorted (``index/keys``) with their rows (``index/rows``), so a lookup loads two flat arrays per
segment and answers a whole batch of queries with one vectorised binary search per segment.
"""

from __future__ import annotations

import numpy as np

KEY = np.dtype("S16")  # raw BLAKE2b-128 digests; numpy compares them bytewise, embedded NULs included

_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def hex_to_binary(keys: np.ndarray) -> np.ndarray:
    """``S32`` hex keys as ``S16`` binary keys (vectorised; no Python loop over rows)."""
    keys = np.ascontiguousarray(keys, dtype="S32")
    nibbles = _HEX[keys.view(np.uint8).reshape(-1, 32)]
    if len(nibbles) and (nibbles == 255).any():
        bad = int(np.flatnonzero((nibbles == 255).any(axis=1))[0])
        raise ValueError(f"key {bad} is not 32 hex digits: {keys[bad]!r}")
    packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
    return np.ascontiguousarray(packed).view(KEY).reshape(-1)


def as_sorted_index(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys (``uint8 [n, 16]``, as stored in a segment) and the row of each."""
    order = np.argsort(binary, kind="stable").astype(np.uint32)
    return binary[order].view(np.uint8).reshape(-1, 16), order


class KeyIndex:
    """Rows of keys across several sorted runs (one per segment), each with its first row in the set."""

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray, int]] = []

    def add(self, sorted_keys: np.ndarray, rows: np.ndarray, base: int) -> None:
        """Add one segment: ``sorted_keys`` (``S16`` or ``uint8 [n, 16]``), their rows, the segment's first set row."""
        if sorted_keys.dtype != KEY:
            sorted_keys = np.ascontiguousarray(sorted_keys, dtype=np.uint8).view(KEY).reshape(-1)
        if len(sorted_keys):
            self._runs.append((sorted_keys, np.asarray(rows), int(base)))

    def __len__(self) -> int:
        return sum(len(k) for k, _, _ in self._runs)

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + r.nbytes for k, r, _ in self._runs)

    def lookup(self, queries: np.ndarray) -> np.ndarray:
        """Set row of each ``S16`` query, -1 where the key is not stored."""
        found = np.full(len(queries), -1, dtype=np.int64)
        for keys, rows, base in self._runs:
            pos = np.searchsorted(keys, queries)
            pos[pos == len(keys)] = 0
            hit = keys[pos] == queries
            found[hit] = rows[pos[hit]].astype(np.int64) + base
        return found

    def contains(self, queries: np.ndarray) -> np.ndarray:
        return self.lookup(queries) >= 0


class KeySet:
    """A growing set of ``S16`` keys held as a few sorted arrays (16 bytes a key, no Python objects).

    Arrays are merged like a binary counter, so there are at most log2(n) of them to search.
    """

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(r) for r in self._runs)

    def contains(self, queries: np.ndarray) -> np.ndarray:
        hit = np.zeros(len(queries), dtype=bool)
        for run in self._runs:
            pos = np.searchsorted(run, queries)
            pos[pos == len(run)] = 0
            hit |= run[pos] == queries
        return hit

    def add(self, keys: np.ndarray) -> None:
        """Add keys (callers pass keys not yet in the set, without repeats)."""
        if not len(keys):
            return
        self._runs.append(np.sort(keys))
        while len(self._runs) > 1 and len(self._runs[-1]) * 2 >= len(self._runs[-2]):
            last = self._runs.pop()
            self._runs[-1] = np.sort(np.concatenate([self._runs[-1], last]))
