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


_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def binary_to_hex(binary: np.ndarray) -> np.ndarray:
    """``S16`` binary keys as ``S32`` hex keys (vectorised)."""
    raw = np.ascontiguousarray(binary).view(np.uint8).reshape(-1, 16)
    out = np.empty((len(raw), 32), dtype=np.uint8)
    out[:, 0::2] = _DIGITS[raw >> 4]
    out[:, 1::2] = _DIGITS[raw & 15]
    return out.view("S32").reshape(-1)


def as_sorted_index(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys (``uint8 [n, 16]``, as stored in a segment) and the row of each."""
    order = np.argsort(binary, kind="stable").astype(np.uint32)
    return binary[order].view(np.uint8).reshape(-1, 16), order


def split(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``S16`` keys as two native ``uint64`` halves; sorting by (hi, lo) is the bytewise order."""
    raw = np.ascontiguousarray(keys).view(np.uint8).reshape(-1, 16)
    hi = np.ascontiguousarray(raw[:, :8]).view(">u8").reshape(-1).astype(np.uint64)
    lo = np.ascontiguousarray(raw[:, 8:]).view(">u8").reshape(-1).astype(np.uint64)
    return hi, lo


def search(hi: np.ndarray, lo: np.ndarray, qhi: np.ndarray, qlo: np.ndarray) -> np.ndarray:
    """Position of each query in the sorted (``hi``, ``lo``) run, -1 where absent.

    A binary search on the high halves (fast integer compares), then a check of the low halves;
    runs of equal high halves (about one in 10^12 pairs at 10M keys) are searched exactly.
    """
    found = np.full(len(qhi), -1, dtype=np.int64)
    if not len(hi) or not len(qhi):
        return found
    left = np.searchsorted(hi, qhi, side="left")
    at = np.minimum(left, len(hi) - 1)
    same_hi = hi[at] == qhi
    hit = same_hi & (lo[at] == qlo)
    found[hit] = at[hit]
    for q in np.flatnonzero(same_hi & ~hit):  # another key shares this high half
        right = int(np.searchsorted(hi, qhi[q], side="right"))
        start = int(left[q])
        inner = int(np.searchsorted(lo[start:right], qlo[q]))
        if start + inner < right and lo[start + inner] == qlo[q]:
            found[q] = start + inner
    return found


class KeyIndex:
    """Rows of keys across several sorted runs (one per segment), each with its first row in the set."""

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []

    def add(self, sorted_keys: np.ndarray, rows: np.ndarray, base: int) -> None:
        """Add one segment: ``sorted_keys`` (``S16`` or ``uint8 [n, 16]``), their rows, the segment's first set row."""
        if len(sorted_keys):
            hi, lo = split(np.ascontiguousarray(sorted_keys))
            self._runs.append((hi, lo, np.asarray(rows), int(base)))

    def __len__(self) -> int:
        return sum(len(hi) for hi, _, _, _ in self._runs)

    @property
    def nbytes(self) -> int:
        return sum(hi.nbytes + lo.nbytes + r.nbytes for hi, lo, r, _ in self._runs)

    def lookup(self, queries: np.ndarray) -> np.ndarray:
        """Set row of each ``S16`` query, -1 where the key is not stored."""
        qhi, qlo = split(queries)
        order = np.argsort(qhi, kind="stable")  # sorted needles: the searches walk memory in order
        qhi, qlo = qhi[order], qlo[order]
        found = np.full(len(queries), -1, dtype=np.int64)
        for hi, lo, rows, base in self._runs:
            pos = search(hi, lo, qhi, qlo)
            hit = pos >= 0
            found[hit] = rows[pos[hit]].astype(np.int64) + base
        result = np.empty_like(found)
        result[order] = found
        return result

    def contains(self, queries: np.ndarray) -> np.ndarray:
        return self.lookup(queries) >= 0


class KeySet:
    """A growing set of ``S16`` keys held as a few sorted arrays (16 bytes a key, no Python objects).

    Arrays are merged like a binary counter, so there are at most log2(n) of them to search.
    """

    def __init__(self) -> None:
        self._runs: list[tuple[np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return sum(len(hi) for hi, _ in self._runs)

    def contains(self, queries: np.ndarray) -> np.ndarray:
        qhi, qlo = split(queries)
        hit = np.zeros(len(queries), dtype=bool)
        for hi, lo in self._runs:
            hit |= search(hi, lo, qhi, qlo) >= 0
        return hit

    def add(self, keys: np.ndarray) -> None:
        """Add keys (callers pass keys not yet in the set, without repeats)."""
        if not len(keys):
            return
        self._runs.append(_sorted(*split(keys)))
        while len(self._runs) > 1 and len(self._runs[-1][0]) * 2 >= len(self._runs[-2][0]):
            hi, lo = self._runs.pop()
            prev_hi, prev_lo = self._runs[-1]
            self._runs[-1] = _sorted(np.concatenate([prev_hi, hi]), np.concatenate([prev_lo, lo]))


def _sorted(hi: np.ndarray, lo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((lo, hi))
    return hi[order], lo[order]
