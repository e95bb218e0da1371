"""``embedx compact FILE``: merge each set's segments into few large ones, crash-safely.

Each merged segment's sequence range covers the segments it replaces. Until the new index is
renamed into place, the merged segment is an orphan overlapping committed ones, and the next
writer deletes it; after the rename, the replaced segments are the orphans and are deleted.
Either way a kill leaves exactly one copy of every row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedx.contract.errors import StoreError
from embedx.store.commit import commit, merge_segments, write_index
from embedx.store.faults import check_free_space, needs_space_message
from embedx.store.lock import WriterLock
from embedx.store.upgrade import prepare

TARGET_BYTES = 256 << 20  # merging holds one target in memory (about three copies)


@dataclass
class CompactReport:
    path: str
    segments_before: int
    segments_after: int
    bytes_rewritten: int


def compact(path: Path | str, target_bytes: int = TARGET_BYTES) -> CompactReport:
    """Merge consecutive segments of every set into segments of up to ``target_bytes``."""
    with WriterLock(Path(path)) as lock:
        catalog = prepare(lock.target)
        commit(catalog)  # anything an interrupted run left is committed first
        before = sum(len(s.segments) for s in catalog.sets.values())
        rewritten = 0
        for state in catalog.sets.values():
            groups: list[list[Any]] = []
            current: list[Any] = []
            for info in state.segments:
                if current and sum(s.bytes for s in current) + info.bytes > target_bytes:
                    groups.append(current)
                    current = []
                current.append(info)
            if current:
                groups.append(current)
            merged = []
            for group in groups:
                if len(group) < 2:
                    merged += group
                    continue
                size = sum(s.bytes for s in group)
                if not check_free_space(catalog.directory, size, "compacting"):
                    raise StoreError(needs_space_message(catalog.directory, size, f"compacting {lock.target}"))
                merged.append(merge_segments(catalog, state, group))
                rewritten += size
            state.segments = merged
        after = sum(len(s.segments) for s in catalog.sets.values())
        if after != before:
            write_index(catalog)
            commit(catalog)  # deletes the replaced segments
        return CompactReport(str(lock.target), before, after, rewritten)
