"""Cached-key lookup that costs what is asked, not what the cache holds.

Each set segment stores its keys sorted (``index/keys``, ``uint8 [rows, 16]``) with the row of
each (``index/rows``) and the tokens cut from each row (``truncated``). Segments written since
format 2.1 store these three datasets contiguously, so a lookup memory-maps them and binary-searches
the file itself: a query touches about log2(rows) pages per segment, and the process holds no
copy of the keys (the pages are the kernel's page cache, shared and evictable). Automatic
compaction (:mod:`embedx.store.tiers`) keeps the number of segments logarithmic in the rows, so
a lookup of ``q`` keys costs ``O(q log(rows) log(rows))``, not ``O(rows)``.

Segments written by older embedx (chunked datasets) are read into memory as before, until a
compaction rewrites them.

The file is untrusted: the datasets must be plain (:func:`~embedx.store.segment.read_key_index`'s
checks), lie inside the file, and every row ``index/rows`` names must lie in the segment.
Committed segments had that checked by the verification of the index; uncommitted ones are
checked here in full (``checked=False``).
"""

from __future__ import annotations

import mmap
import os
import stat
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from embedx.contract.errors import StoreError
from embedx.store import layout as L
from embedx.store.keyindex import KEY
from embedx.store.segment import SegmentInfo
from embedx.store.sidepaths import check_plain_file

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def _plain_id(fid: h5py.h5f.FileID, name: str, dtype: np.dtype[Any], shape: tuple[int, ...],
              path: Path) -> h5py.h5d.DatasetID:
    """``segment._plain`` in HDF5's own calls: a run opens every segment's key index, and h5py's
    high-level objects cost more than the opening itself (1.9 ms against 0.5 ms a segment)."""
    group = h5py.h5g.open(fid, b"/")
    parts = name.encode().split(b"/")
    for depth, part in enumerate(parts):
        if not group.links.exists(part) or group.links.get_info(part).type != h5py.h5l.TYPE_HARD:
            raise StoreError(f"segment {path}: {name} is missing or a link; refusing to read it")
        obj = h5py.h5o.open(group, part)
        if depth < len(parts) - 1:
            if not isinstance(obj, h5py.h5g.GroupID):
                raise StoreError(f"segment {path}: {name} is missing or a link; refusing to read it")
            group = obj
    if isinstance(obj, h5py.h5d.DatasetID):
        plist = obj.get_create_plist()
        if (plist.get_layout() != h5py.h5d.VIRTUAL and not plist.get_external_count() and not plist.get_nfilters()
                and obj.dtype == dtype and obj.shape == shape):
            return obj
    raise StoreError(f"segment {path}: {name} is not a plain {dtype} dataset of shape {shape}; refusing to read it")


def _read(ds: h5py.h5d.DatasetID) -> np.ndarray:
    out = np.empty(ds.shape, dtype=ds.dtype)
    if out.size:
        ds.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
    return out


class SegmentKeys:
    """One set segment's sorted keys, their rows and ``truncated``: memory-mapped where the file allows."""

    def __init__(self, path: Path, rows: int, checked: bool = True):
        self.path, self.n = path, rows
        self.mapped = False
        check_plain_file(path)
        try:
            # the default access list, as h5py.File's: a file open elsewhere in the process (a reader) must match
            fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDONLY)
            try:
                datasets = [_plain_id(fid, L.SORTED_KEYS, np.dtype(np.uint8), (rows, 16), path),
                            _plain_id(fid, L.SORTED_ROWS, np.dtype(np.uint32), (rows,), path),
                            _plain_id(fid, L.TRUNCATED, np.dtype(np.int32), (rows,), path)]
                offsets = [ds.get_offset() if rows else None for ds in datasets]
                if any(o is None for o in offsets):
                    keys, order, truncated = (_read(ds) for ds in datasets)
                    self.keys = np.ascontiguousarray(keys).view(KEY).reshape(-1)
                    self.order, self.truncated = order, truncated
                else:
                    self._map(offsets)  # type: ignore[arg-type]  # none is None here
                del datasets  # closed before the file, which then closes at once
            finally:
                fid.close()
        except OSError as exc:
            raise StoreError(f"segment {path} is unreadable ({str(exc).splitlines()[0][:160]})") from None
        if not checked and rows and int(self.order.max()) >= rows:
            self._bad_row(int(self.order.max()))

    def _map(self, offsets: list[int]) -> None:
        fd = os.open(self.path, _READ)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise StoreError(f"segment {self.path} is not a regular file")
            sizes = (16 * self.n, 4 * self.n, 4 * self.n)
            for offset, size in zip(offsets, sizes, strict=True):
                if offset < 0 or offset + size > st.st_size:
                    raise StoreError(f"segment {self.path}: its key index lies outside the file; the file is damaged")
            self._mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        self.keys = np.frombuffer(self._mm, dtype=KEY, count=self.n, offset=offsets[0])
        self.order = np.frombuffer(self._mm, dtype=np.uint32, count=self.n, offset=offsets[1])
        self.truncated = np.frombuffer(self._mm, dtype=np.int32, count=self.n, offset=offsets[2])
        self.mapped = True

    def _bad_row(self, row: int) -> None:
        raise StoreError(f"segment {self.path}: {L.SORTED_ROWS} names row {row:,}, but the segment has "
                         f"{self.n:,} rows; the file is damaged (refusing to read it)")

    @property
    def nbytes(self) -> int:
        """Bytes this process holds for the segment (0 when memory-mapped: the kernel's cache holds the pages)."""
        return 0 if self.mapped else self.keys.nbytes + self.order.nbytes + self.truncated.nbytes

    def find(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segment row of each sorted ``S16`` query (-1 where absent) and its ``truncated`` (0 where absent)."""
        rows = np.full(len(queries), -1, dtype=np.int64)
        cut = np.zeros(len(queries), dtype=np.int32)
        if not self.n or not len(queries):
            return rows, cut
        pos = np.searchsorted(self.keys, queries)
        pos = np.minimum(pos, self.n - 1)
        hit = self.keys[pos] == queries
        if hit.any():
            found = self.order[pos[hit]].astype(np.int64)
            if int(found.max()) >= self.n:
                self._bad_row(int(found.max()))
            rows[hit] = found
            cut[hit] = self.truncated[found]
        return rows, cut


class StoredKeys:
    """The keys of one feature set across its segments (in row order), looked up without loading them."""

    def __init__(self, parts: list[tuple[SegmentKeys, int]] | None = None):
        self.parts = parts or []

    @classmethod
    def open(cls, directory: Path, segments: list[SegmentInfo], checked: int | None = None) -> StoredKeys:
        """``segments``: :class:`~embedx.store.segment.SegmentInfo` in row order.

        The first ``checked`` were verified.
        """
        checked = len(segments) if checked is None else checked
        parts, base = [], 0
        for i, info in enumerate(segments):
            parts.append((SegmentKeys(directory / info.file, info.rows, checked=i < checked), base))
            base += info.rows
        return cls(parts)

    def __len__(self) -> int:
        return sum(part.n for part, _ in self.parts)

    @property
    def nbytes(self) -> int:
        return sum(part.nbytes for part, _ in self.parts)

    def find(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Set row of each ``S16`` query (-1 where not stored) and the tokens ``max_length`` cut from it."""
        queries = np.ascontiguousarray(queries, dtype=KEY)
        order = np.argsort(queries, kind="stable")  # sorted needles: the searches walk the pages in order
        needles = queries[order]
        rows = np.full(len(queries), -1, dtype=np.int64)
        cut = np.zeros(len(queries), dtype=np.int32)
        for part, base in self.parts:
            found, truncated = part.find(needles)
            hit = (found >= 0) & (rows < 0)
            rows[hit] = found[hit] + base
            cut[hit] = truncated[hit]
        out_rows, out_cut = np.empty_like(rows), np.empty_like(cut)
        out_rows[order], out_cut[order] = rows, cut
        return out_rows, out_cut

    def lookup(self, queries: np.ndarray) -> np.ndarray:
        return self.find(queries)[0]

    def contains(self, queries: np.ndarray) -> np.ndarray:
        return self.lookup(queries) >= 0
