"""Segments another process wrote for the open set (``--engine ray --write-on-workers``): checked, then staged.

A worker writes a group of batches with :func:`embedx.store.segment.write_set_segment` (the
store's own code and naming, fsync'd, renamed into ``FILE.h5.segments/``) and tells the driver
the file's name. Before the driver maps it in the index it checks, without reading the feature
values: the name (a set segment of this set, with the range of sequence numbers the driver gave
its batches), a
plain file inside the segment folder (no link, nothing outside it: :func:`open_segment` refuses
virtual, external and linked datasets), kind, set, rows and metadata (configuration, outputs,
dimensions, dtype) as the driver's, every dataset's dtype and shape, the keys, in order, exactly
the keys the driver sent, the key index consistent with them, and token offsets that start where
the set ends. A segment that fails is moved to ``FILE.h5.quarantine/`` by the store's own
quarantine and :class:`SegmentRefused` names it; nothing of it is committed. The driver then
computes those rows itself and stages them with :func:`stage_rows` under the same range, so a
refused segment costs time, never rows.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from embedx.contract.errors import StoreError
from embedx.store import layout as L
from embedx.store.catalog import Catalog, SetState
from embedx.store.segment import SET, SegmentInfo, now, open_segment, read_info, verify_key_index, write_set_segment
from embedx.store.sidepaths import check_plain_file, segment_folder


class SegmentRefused(StoreError):
    """A worker's segment failed the driver's checks (set aside when it was there); ``present``: it was."""

    def __init__(self, message: str, present: bool):
        super().__init__(message)
        self.present = present


def adopt_segment(catalog: Catalog, set_name: str, meta: dict[str, Any], file: str, lo: int, hi: int,
                  keys: np.ndarray) -> np.ndarray:
    """Check the worker segment ``file`` against what the driver sent for the batches ``lo``..``hi``; stage it;
    return its ``truncated`` column."""
    state = catalog.sets.get(set_name)
    expected_meta = json.loads(json.dumps(meta, sort_keys=True))
    try:
        info, truncated = _check(catalog.directory, state, set_name, expected_meta, str(file), (lo, hi), keys)
    except _Refused as refused:
        folder = segment_folder(catalog.path)
        name = str(file)
        moved = ""
        if folder is not None and refused.present and not _referenced(catalog, name):  # never the store's own
            with folder:
                catalog.quarantine(folder, name, f"the worker segment {name}", refused.why)
            moved = f"; set aside in {L.quarantine_dir(catalog.path)}"
        span = f"{lo}" if lo == hi else f"{lo}-{hi}"
        raise SegmentRefused(f"{catalog.path}: refused the segment a worker wrote for batch segment {span} "
                             f"({refused.why}){moved}", refused.present) from None
    _stage(catalog, set_name, meta).pending.append(info)
    return truncated


def stage_rows(catalog: Catalog, set_name: str, meta: dict[str, Any], lo: int, hi: int,
               arrays: dict[str, np.ndarray]) -> None:
    """Write checked rows the driver computed (for a refused segment's batches ``lo``..``hi``) as a segment
    at the set's current end, and stage it: the range stays the one reserved for those batches."""
    state = _stage(catalog, set_name, meta)
    bases = {o["name"]: state.tokens(o["name"]) for o in meta["outputs"] if o["level"] == "token"}
    state.pending.append(write_set_segment(catalog.directory, set_name, meta, lo, hi, arrays, bases))


def _stage(catalog: Catalog, set_name: str, meta: dict[str, Any]) -> SetState:
    state = catalog.sets.get(set_name)
    if state is None:
        state = catalog.sets[set_name] = SetState(set_name, meta, created=now())
    return state


def _referenced(catalog: Catalog, name: str) -> bool:
    """Whether the index (or this transaction) maps ``name``: a worker naming such a file is refused, never the file."""
    tables = [*catalog.inputs.values(), *catalog.pending_inputs.values()]
    return any(info.file == name for state in catalog.sets.values() for info in state.all) or \
        any(info.file == name for table in tables for info in [*table.pieces, table.final])


class _Refused(Exception):
    def __init__(self, why: str, present: bool = True):
        super().__init__(why)
        self.why, self.present = why, present


def _check(directory: Path, state: SetState | None, set_name: str, meta: dict[str, Any], file: str,
           span: tuple[int, int], keys: np.ndarray) -> tuple[SegmentInfo, np.ndarray]:
    lo, hi = span
    pattern = rf"{SET}@{re.escape(L.safe_name(set_name))}@{lo:08d}-{hi:08d}@[0-9a-f]{{8}}\.h5"
    if "/" in file or "\0" in file or file in (".", ".."):
        raise _Refused(f"its name {file[:80]!r} is not a file of the segment folder", present=False)
    if re.fullmatch(pattern, file) is None:
        raise _Refused(f"its name {file[:80]!r} is not that of segment {lo}-{hi} of set {set_name}",
                       present=(directory / file).exists())
    path = directory / file
    if not os.path.lexists(path):
        raise _Refused(f"{file} is not in {directory}: --write-on-workers needs a folder every worker and the "
                       "driver share", present=False)
    try:
        check_plain_file(path)
    except StoreError as exc:
        raise _Refused(str(exc)) from None
    rows = len(keys)
    try:
        info, found = read_info(path)
        if info.kind != SET or info.name != set_name or (info.lo, info.hi) != span or info.rows != rows:
            raise _Refused(f"it holds {info.rows:,} rows of {info.kind} {info.name!r} {info.lo}-{info.hi}, "
                           f"not the {rows:,} rows of batches {lo}-{hi} of {set_name}")
        if found != meta:
            raise _Refused("its configuration, outputs or dtype differ from the driver's")
        verify_key_index(path, rows)
        with open_segment(path) as handle:
            stored = handle[L.KEYS]
            if stored.dtype != np.dtype(L.KEY_DTYPE) or stored.shape != (rows,):
                raise _Refused(f"{L.KEYS} is {stored.dtype} {stored.shape}, not {L.KEY_DTYPE} ({rows},)")
            if not np.array_equal(stored[:], np.asarray(keys, dtype=L.KEY_DTYPE)):
                raise _Refused("its keys are not the keys of the texts the driver sent, in order")
            truncated = handle[L.TRUNCATED][:]
            if truncated.dtype != np.int32 or (truncated < 0).any():
                raise _Refused(f"{L.TRUNCATED} is not a non-negative int32 column")
            _check_outputs(handle, state, meta, info)
    except StoreError as exc:
        raise _Refused(str(exc)) from None
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise _Refused(f"{type(exc).__name__}: {str(exc)[:160]}") from None
    return info, truncated


def _check_outputs(handle: Any, state: SetState | None, meta: dict[str, Any], info: SegmentInfo) -> None:
    dtype = np.dtype(meta["dtype"])
    for out in meta["outputs"]:
        inner = ((out["layers"],) if out.get("per_layer") else ()) + (out["dim"],)
        sub = handle[out["name"]]
        values = sub[L.VALUES]
        count = info.rows if out["level"] == "document" else info.tokens.get(out["name"], 0)
        if values.dtype != dtype or values.shape != (count, *inner):
            raise _Refused(f"{out['name']}/{L.VALUES} is {values.dtype} {values.shape}, not {dtype} "
                           f"{(count, *inner)}")
        if out["level"] != "token":
            continue
        offsets = sub[L.OFFSETS][:]
        base = state.tokens(out["name"]) if state is not None else 0
        if offsets.dtype != np.int64 or len(offsets) != info.rows + 1 or int(offsets[0]) != base \
                or int(offsets[-1]) - base != count or (np.diff(offsets) < 0).any():
            raise _Refused(f"{out['name']}/{L.OFFSETS} does not run from {base:,} (where the set ends) over "
                           f"{count:,} tokens")
