"""Commit: write a new index that maps every committed and pending segment, then swap it in.

The index holds no feature data, only virtual datasets over the segment files (relative paths
into ``FILE.h5.segments/``) and metadata, so a commit costs the size of the index, not of the
cache: appending 1% of rows writes those rows once, into their segments, plus a small index.
The new index is built in memory, written under a temporary name, fsync'd and renamed over
the old one: a reader sees the old state or the new one. A kill before the rename leaves the
old index and pending segments that the next run commits; after it, leftovers that the next
run deletes.

Small pending segments (one per checkpoint) are first merged into segments of about
``MERGE_BYTES``, when the disk has room for the copy, so a plain full read of a large cache
opens few files.
"""

from __future__ import annotations

import json
import os
from typing import Any

import h5py
import numpy as np

from embedx.contract.errors import StoreError
from embedx.store import layout as L
from embedx.store.catalog import Catalog, InputState, SetState, open_folder, remove_unreferenced
from embedx.store.faults import check_free_space, needs_space_message
from embedx.store.segment import STRING, SegmentInfo, now, read_set_arrays, write_image, write_set_segment
from embedx.store.sidepaths import MARKER, segment_folder
from embedx.store.writer import concat_batches

MERGE_BYTES = 32 << 20


def commit(catalog: Catalog, merge: bool = True) -> int:
    """Map all pending segments in a new index; return the number of feature rows it added."""
    if not any(s.pending for s in catalog.sets.values()) and not catalog.pending_inputs and not catalog.rewrite:
        remove_unreferenced(catalog, set())
        if not catalog.path.exists():
            _remove_unused_folder(catalog)  # a first run that failed before anything was written leaves nothing
        return 0
    if merge:
        for state in catalog.sets.values():
            merge_pending(catalog, state)
    added = sum(s.rows for st in catalog.sets.values() for s in st.pending)
    segments = sum(len(st.all) for st in catalog.sets.values()) + len(catalog.inputs) + len(catalog.pending_inputs)
    needed = (64 << 10) + 4096 * segments  # the index: metadata and one mapping per segment and dataset
    if not check_free_space(catalog.path.parent, needed, "the commit"):
        raise StoreError(needs_space_message(catalog.path.parent, needed, f"committing {catalog.path}"))
    folder = open_folder(catalog, create=True)  # the folder records the store before the index names it
    if folder is not None:
        folder.close()
    write_index(catalog)
    catalog.rewrite = False
    for state in catalog.sets.values():
        state.segments += state.pending
        state.pending = []
    catalog.inputs.update(catalog.pending_inputs)
    catalog.pending_inputs = {}
    remove_unreferenced(catalog, set())
    return added


def merge_pending(catalog: Catalog, state: SetState, target: int = MERGE_BYTES) -> None:
    """Merge runs of small consecutive pending segments into segments of about ``target`` bytes."""
    groups: list[list[SegmentInfo]] = [[]]
    for info in state.pending:
        if groups[-1] and sum(s.bytes for s in groups[-1]) + info.bytes > target:
            groups.append([])
        groups[-1].append(info)
    merged: list[SegmentInfo] = []
    for group in groups:
        if len(group) < 2:
            merged += group
            continue
        size = sum(s.bytes for s in group)
        if not check_free_space(catalog.directory, size, "merging segments"):
            merged += group  # no room for the copy: commit them unmerged, nothing is lost
            continue
        try:
            merged.append(merge_segments(catalog, state, group))
        except StoreError as exc:  # a full disk or a size limit mid-merge: commit them unmerged
            catalog.messages.append(f"segments of {state.name} were left unmerged: {exc}")
            merged += group
            continue
        folder = segment_folder(catalog.path)
        if folder is not None:
            with folder:
                for info in group:
                    folder.remove(info.file)
    state.pending = merged


def _remove_unused_folder(catalog: Catalog) -> None:
    """Remove the segment folder of a file that does not exist, if it holds nothing but its record."""
    folder = segment_folder(catalog.path)
    if folder is None:
        return
    with folder:
        if set(folder.names()) - {MARKER}:
            return
        if folder.remove(MARKER) is not None:
            return
    try:
        os.rmdir(catalog.directory)
    except OSError:
        pass


def merge_segments(catalog: Catalog, state: SetState, group: list[SegmentInfo]) -> SegmentInfo:
    """One segment holding ``group``'s rows in order (its range covers theirs, so a crash keeps one copy)."""
    parts = [read_set_arrays(catalog.directory / info.file, state.meta) for info in group]
    everything = state.all
    before = everything[:everything.index(group[0])]
    bases = {out["name"]: sum(s.tokens.get(out["name"], 0) for s in before)
             for out in state.meta["outputs"] if out["level"] == "token"}
    return write_set_segment(catalog.directory, state.name, state.meta, group[0].lo, group[-1].hi,
                             concat_batches(parts), bases)


def write_index(catalog: Catalog) -> None:
    """Write ``FILE.h5`` mapping committed and pending segments, atomically replacing the old index."""
    from embedx import __version__

    prefix = catalog.path.name + L.SEGMENT_DIR_SUFFIX + "/"
    inputs = {**catalog.inputs, **catalog.pending_inputs}
    infos: list[SegmentInfo] = []

    def build(handle: h5py.File) -> None:
        handle.attrs.update({"format": L.FORMAT_NAME, "format_version": L.FORMAT_VERSION, "created": catalog.created,
                             "updated": now(), "embedx_version": __version__, "store_id": catalog.store_id})
        sets = handle.create_group(L.SETS)
        for _, state in sorted(catalog.sets.items(), key=lambda kv: kv[0]):
            if state.all:
                _set_group(sets, state, prefix)
                infos.extend(state.all)
        tables = handle.create_group(L.INPUTS)
        for _, table in sorted(inputs.items(), key=lambda kv: kv[0]):
            _input_group(tables, table, prefix)
            infos.extend([*table.pieces, table.final])
        handle.create_dataset(L.SEGMENTS, data=np.array([i.as_json() for i in infos], dtype=object), dtype=STRING)

    write_image(catalog.path, build, index=True)


def _fill(dtype: np.dtype) -> Any:
    """What a read gives where a segment file is missing: NaN for values (stored values are always
    finite, so readers can tell), -1 for integers, empty keys; never a plausible row."""
    if dtype.kind == "f":
        return np.nan
    if dtype.kind in "iu":
        return -1 if dtype.kind == "i" else 0
    if dtype.kind == "S":
        return b""
    return None


def _virtual(group: h5py.Group, name: str, dtype: Any, inner: tuple[int, ...],
             sources: list[tuple[str, str, int, int, int]]) -> None:
    """A virtual dataset concatenating ``sources``: (file, dataset, source length, first row, rows).

    Built with HDF5's own calls, as ``h5py.VirtualLayout`` does, without its per-source Python
    selection objects: those made an index of a few hundred segments cost a third of a second.
    """
    total = sum(n for *_, n in sources)
    if total == 0:
        group.create_dataset(name, shape=(0, *inner), dtype=dtype)
        return
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.VIRTUAL)
    space = h5py.h5s.create_simple((total, *inner))
    zeros = (0,) * len(inner)
    at = 0
    for file, dataset, length, first, n in sources:
        if n:
            source = h5py.h5s.create_simple((length, *inner))
            source.select_hyperslab((first, *zeros), (n, *inner))
            space.select_hyperslab((at, *zeros), (n, *inner))
            dcpl.set_virtual(space, os.fsencode(file), dataset.encode("utf-8"), source)
            at += n
    fill = _fill(np.dtype(dtype))
    if fill is not None:
        dcpl.set_fill_value(np.array([fill]))
    h5py.h5d.create(group.id, name.encode("utf-8"), h5py.h5t.py_create(np.dtype(dtype), logical=1),
                    h5py.h5s.create_simple((total, *inner)), dcpl=dcpl)


def _set_group(parent: h5py.Group, state: SetState, prefix: str) -> None:
    meta, segments = state.meta, state.all
    group = parent.create_group(state.name)
    for key in ("embedder", "plugin", "config_hash", "dtype"):
        group.attrs[key] = meta[key] or ""
    group.attrs["config"] = _json(meta["config"])
    group.attrs["outputs"] = _json(meta["outputs"])
    group.attrs["compression"] = meta.get("compression") or ""
    group.attrs["created"] = state.created or now()
    group.attrs["updated"] = now()
    group.attrs["rows"] = state.rows
    group.attrs["segments"] = len(segments)
    rows = [(prefix + s.file, s.rows) for s in segments]
    _virtual(group, L.KEYS, np.dtype(L.KEY_DTYPE), (), [(f, L.KEYS, n, 0, n) for f, n in rows])
    _virtual(group, L.TRUNCATED, np.dtype(np.int32), (), [(f, L.TRUNCATED, n, 0, n) for f, n in rows])
    dtype = np.dtype(meta["dtype"])
    for out in meta["outputs"]:
        sub = group.create_group(out["name"])
        sub.attrs.update({"level": out["level"], "dim": out["dim"], "per_layer": bool(out.get("per_layer"))})
        if out.get("per_layer"):
            sub.attrs["layers"] = out["layers"]
        inner = ((out["layers"],) if out.get("per_layer") else ()) + (out["dim"],)
        values = f"{out['name']}/{L.VALUES}"
        if out["level"] == "document":
            _virtual(sub, L.VALUES, dtype, inner, [(f, values, n, 0, n) for f, n in rows])
            continue
        counts = [s.tokens.get(out["name"], 0) for s in segments]
        _virtual(sub, L.VALUES, dtype, inner, [(f, values, t, 0, t) for (f, _), t in zip(rows, counts, strict=True)])
        _virtual(sub, L.TOKENS, STRING, (), [(f, f"{out['name']}/{L.TOKENS}", t, 0, t)
                                             for (f, _), t in zip(rows, counts, strict=True)])
        # Offsets are absolute in every segment: the first maps whole, the others without their leading 0.
        offsets = f"{out['name']}/{L.OFFSETS}"
        _virtual(sub, L.OFFSETS, np.dtype(np.int64), (),
                 [(f, offsets, n + 1, 0 if i == 0 else 1, n + 1 if i == 0 else n) for i, (f, n) in enumerate(rows)])


def _input_group(parent: h5py.Group, table: InputState, prefix: str) -> None:
    meta = table.meta
    group = parent.create_group(table.name)
    group.attrs["source"] = meta.get("source") or ""
    group.attrs["columns"] = _json(meta.get("columns") or [])
    group.attrs["text_stored"] = bool(meta.get("text_stored"))
    group.attrs["digest"] = meta.get("digest") or ""
    group.attrs["typed"] = _json(meta.get("typed") or {})
    if meta.get("fingerprint") and isinstance(meta.get("covered"), dict):  # see embedx.store.coverage
        group.attrs["fingerprint"] = meta["fingerprint"]
        group.attrs["covered"] = _json(meta["covered"])
    group.attrs["created"] = table.created or now()
    group.attrs["rows"] = table.final.rows
    pieces = [(prefix + p.file, p.rows) for p in table.pieces]
    _virtual(group, L.KEYS, np.dtype(L.KEY_DTYPE), (), [(f, L.KEYS, n, 0, n) for f, n in pieces])
    _virtual(group, L.EMPTY, np.dtype(bool), (), [(f, L.EMPTY, n, 0, n) for f, n in pieces])
    _virtual(group, L.LINE, np.dtype(np.int64), (), [(f, L.LINE, n, 0, n) for f, n in pieces])
    if meta.get("text_stored"):
        _virtual(group, L.TEXT, STRING, (), [(f, L.TEXT, n, 0, n) for f, n in pieces])
    columns = group.create_group(L.COLUMNS)
    typed = meta.get("typed") or {}
    used: set[str] = set()
    for index, column in enumerate(meta.get("columns") or []):
        kind = typed.get(str(index), "str")
        name = _unique(column, used)
        if kind == "str":  # as text in every piece
            _virtual(columns, name, STRING, (), [(f, f"{L.RAW}/{index}", n, 0, n) for f, n in pieces])
        else:  # typed, or text that first appeared mid-input: whole in the final piece
            n = table.final.rows
            dtype = {"int": np.dtype(np.int64), "float": np.dtype(np.float64)}.get(kind, STRING)
            _virtual(columns, name, dtype, (), [(prefix + table.final.file, f"{L.COLUMNS}/{index}", n, 0, n)])
        columns[name].attrs["name"] = column


def _unique(column: str, used: set[str]) -> str:
    """A dataset name for ``column`` no other column of the table has taken ("a b" and "a_b" both exist)."""
    base = L.safe_name(column)
    name, n = base, 2
    while name in used:
        name, n = f"{base}~{n}", n + 1
    used.add(name)
    return name


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=isinstance(value, dict))


TIER_CAP_BYTES = 256 << 20  # merged segments grow to about this (a merge holds ~3 copies in memory)


def tier_start(segments: list[SegmentInfo], cap: int = TIER_CAP_BYTES) -> int:
    """Where the tail of ``segments`` that one merge should join begins (``len - 1``: nothing to merge).

    A binary counter over sizes: the newest segment joins the one before it while it is at least as
    large, so sizes fall by half or more from oldest to newest and a set of ``n`` rows keeps about
    ``log2(n / rows per run)`` segments below the cap (and ``size / cap`` above it)."""
    start = len(segments) - 1
    if start < 1:
        return max(start, 0)
    size = max(segments[-1].bytes, 1)
    while start > 0:
        previous = max(segments[start - 1].bytes, 1)
        if size < previous or size + previous > cap:
            break
        start -= 1
        size += previous
    return start


def compact_tiers(catalog: Catalog, cap: int | None = None) -> int:
    """After a commit: merge the newest committed segments of each set while the tiers call for it.

    Crash-safe like ``embedx compact``: the merged segment covers the ranges it replaces, so until
    the new index is in place it is an orphan the next writer deletes. Returns the segments merged away."""
    cap = TIER_CAP_BYTES if cap is None else cap
    merged_away = 0
    for state in catalog.sets.values():
        if state.pending:
            continue  # commit() maps pending segments first
        start = tier_start(state.segments, cap)
        group = state.segments[start:]
        if len(group) < 2:
            continue
        size = sum(s.bytes for s in group)
        if not check_free_space(catalog.directory, size, "merging segments"):
            continue
        try:
            merged = merge_segments(catalog, state, group)
        except StoreError as exc:  # a full disk mid-merge: the segments stay as they are
            catalog.messages.append(f"segments of {state.name} were left unmerged: {exc}")
            continue
        state.segments = state.segments[:start] + [merged]
        merged_away += len(group) - 1
    if merged_away:
        write_index(catalog)
        remove_unreferenced(catalog, set())  # retires the replaced segments
    return merged_away
