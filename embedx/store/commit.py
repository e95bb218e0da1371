"""Fold staged rows into the HDF5 file without ever exposing a half-written file.

The new file is built beside the old one (existing groups are copied chunk by chunk with
HDF5's object copy, staged rows appended), made durable, then renamed over the old file in
one step. A kill at any moment leaves either the old file or the new one, plus staging that
the next run commits again; keys already in the file are skipped, so nothing is duplicated.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from embedx.store import layout as L
from embedx.store.durable import fsync_dir, fsync_file
from embedx.store.open import open_checked
from embedx.store.packing import ragged_rows, unpack_strings
from embedx.store.staging import Staging


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def commit(path: Path, staging: Staging) -> int:
    """Commit everything staged; return the number of new feature rows."""
    set_names = staging.staged_sets()
    inputs = list(staging.staged_inputs())
    if not set_names and not inputs:
        staging.clear()
        return 0
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    added = 0
    try:
        with h5py.File(tmp, "w") as dst:
            old = open_checked(path) if path.exists() else None
            try:
                _init_root(dst, old)
                replaced = {name for name, _, _ in inputs}
                if old is not None:
                    for name in old[L.SETS]:
                        old.copy(old[L.SETS][name], dst[L.SETS], name=name)
                    for name in old[L.INPUTS]:
                        if name not in replaced:
                            old.copy(old[L.INPUTS][name], dst[L.INPUTS], name=name)
            finally:
                if old is not None:
                    old.close()
            for name in set_names:
                added += _commit_set(dst[L.SETS], name, staging)
            for name, meta, arrays in inputs:
                _write_input(dst[L.INPUTS], name, meta, arrays)
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    staging.clear()
    return added


def _init_root(dst: h5py.File, old: h5py.File | None) -> None:
    from embedx import __version__

    dst.attrs["format"] = L.FORMAT_NAME
    dst.attrs["format_version"] = L.FORMAT_VERSION
    dst.attrs["created"] = old.attrs["created"] if old is not None and "created" in old.attrs else now()
    dst.attrs["updated"] = now()
    dst.attrs["embedx_version"] = __version__
    dst.create_group(L.SETS)
    dst.create_group(L.INPUTS)


def _create_set(parent: h5py.Group, name: str, meta: dict[str, Any]) -> h5py.Group:
    group = parent.create_group(name)
    for key in ("embedder", "plugin", "config_hash", "dtype"):
        group.attrs[key] = meta[key]
    group.attrs["config"] = json.dumps(meta["config"], sort_keys=True)
    group.attrs["outputs"] = json.dumps(meta["outputs"])
    group.attrs["created"] = now()
    group.attrs["rows"] = 0
    compression = meta.get("compression") or None
    group.create_dataset(L.KEYS, shape=(0,), maxshape=(None,), dtype=L.KEY_DTYPE, chunks=(8192,))
    group.create_dataset(L.TRUNCATED, shape=(0,), maxshape=(None,), dtype="int32", chunks=(8192,))
    dtype = np.dtype(meta["dtype"])
    for out in meta["outputs"]:
        sub = group.create_group(out["name"])
        sub.attrs["level"] = out["level"]
        inner = ((out["layers"],) if out.get("per_layer") else ()) + (out["dim"],)
        sub.attrs["dim"] = out["dim"]
        sub.attrs["per_layer"] = bool(out.get("per_layer"))
        if out.get("per_layer"):
            sub.attrs["layers"] = out["layers"]
        rows = L.chunk_rows(int(np.prod(inner)) * dtype.itemsize)
        sub.create_dataset(L.VALUES, shape=(0, *inner), maxshape=(None, *inner), dtype=dtype,
                           chunks=(rows, *inner), compression=compression, shuffle=bool(compression))
        if out["level"] == "token":
            sub.create_dataset(L.OFFSETS, data=np.zeros(1, dtype=np.int64), maxshape=(None,), chunks=(8192,))
            sub.create_dataset(L.TOKENS, shape=(0,), maxshape=(None,), dtype=h5py.string_dtype("utf-8"),
                               chunks=(8192,), compression=compression)
    return group


def _append(ds: h5py.Dataset, data: np.ndarray) -> None:
    if len(data) == 0:
        return
    start = ds.shape[0]
    ds.resize(start + len(data), axis=0)
    ds[start:] = data


def _commit_set(parent: h5py.Group, name: str, staging: Staging) -> int:
    meta = staging.set_meta(name)
    group = parent[name] if name in parent else _create_set(parent, name, meta)
    seen = set(group[L.KEYS][:].tolist())
    added = 0
    for _, arrays in staging.shards(name):
        keys = arrays["keys"]
        rows = [i for i, k in enumerate(keys.tolist()) if not (k in seen or seen.add(k))]
        if not rows:
            continue
        rows = np.asarray(rows, dtype=np.int64)
        _append(group[L.KEYS], keys[rows])
        _append(group[L.TRUNCATED], arrays["truncated"][rows])
        for out in meta["outputs"]:
            sub, prefix = group[out["name"]], out["name"] + "."
            if out["level"] == "document":
                _append(sub[L.VALUES], arrays[prefix + L.VALUES][rows])
                continue
            flat, offsets = ragged_rows(arrays[prefix + L.OFFSETS], rows)
            base = sub[L.OFFSETS][-1]
            _append(sub[L.VALUES], arrays[prefix + L.VALUES][flat])
            _append(sub[L.OFFSETS], offsets[1:] + base)
            tokens = unpack_strings(arrays[prefix + "tokens.bytes"], arrays[prefix + "tokens.offsets"])
            _append(sub[L.TOKENS], np.array([tokens[i] for i in flat], dtype=object))
        added += len(rows)
    group.attrs["rows"] = group[L.KEYS].shape[0]
    group.attrs["updated"] = now()
    return added


def _write_input(parent: h5py.Group, name: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    group = parent.create_group(name)
    for key, value in meta.items():
        group.attrs[key] = json.dumps(value) if isinstance(value, (list, dict)) else value
    group.attrs["created"] = now()
    group.attrs["rows"] = len(arrays["keys"])
    string = h5py.string_dtype("utf-8")
    group.create_dataset(L.KEYS, data=arrays["keys"], dtype=L.KEY_DTYPE)
    group.create_dataset(L.EMPTY, data=arrays["empty"])
    group.create_dataset(L.LINE, data=arrays["line"])
    if "text.bytes" in arrays:
        texts = unpack_strings(arrays["text.bytes"], arrays["text.offsets"])
        group.create_dataset(L.TEXT, data=np.array(texts, dtype=object), dtype=string)
    columns = group.create_group(L.COLUMNS)
    for column in meta.get("columns", []):
        if f"col:{column}.bytes" in arrays:
            values = unpack_strings(arrays[f"col:{column}.bytes"], arrays[f"col:{column}.offsets"])
            columns.create_dataset(L.safe_name(column), data=np.array(values, dtype=object), dtype=string)
        else:
            columns.create_dataset(L.safe_name(column), data=arrays[f"col:{column}"])
        columns[L.safe_name(column)].attrs["name"] = column
