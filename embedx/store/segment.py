"""Immutable segment files: the rows of one checkpoint (or one merge), written once and fsync'd.

A segment is built as an HDF5 image in memory and written to disk with plain ``os.write``,
then renamed into place. HDF5 itself never writes to the disk, so a full disk or a file-size
limit is an ordinary ``OSError`` (see :mod:`embedx.store.faults`) with nothing half-written
and no library state to clean up, instead of an error inside HDF5's close.

Set segments hold ``keys``, ``truncated``, ``<output>/values``, for token outputs
``<output>/offsets`` (absolute in the set, so the index can concatenate segments) and
``<output>/tokens``, plus ``index/keys`` and ``index/rows``: the keys sorted, for lookups.
Input pieces hold ``keys``, ``empty``, ``line``, ``text`` and ``raw/<i>`` column text for a
run of input rows; the final piece of an input holds its typed columns and its metadata.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from embedx.errors import StoreError
from embedx.store import layout as L
from embedx.store.durable import fsync_dir
from embedx.store.faults import resource_error
from embedx.store.keyindex import as_sorted_index, hex_to_binary
from embedx.store.packing import unpack_strings

SET, INPUT, INPUT_FINAL = "set", "input", "input-final"
STRING = h5py.string_dtype("utf-8")


@dataclass
class SegmentInfo:
    """What the index records of one segment file (the ``segments`` dataset holds these as JSON)."""

    file: str
    kind: str
    name: str
    lo: int
    hi: int
    rows: int
    bytes: int = 0
    part: int = 0
    tokens: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SegmentInfo:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        info = cls(**data)
        if not isinstance(info.file, str) or "/" in info.file or info.file.startswith("."):
            raise ValueError(f"bad segment file name {info.file!r}")
        return info


def check_segments_present(index: Path, infos: list[SegmentInfo]) -> None:
    """Every segment the index maps must be there, whole: HDF5 would read a missing one as fill values."""
    directory = L.segment_dir(index)
    for info in infos:
        try:
            size = (directory / info.file).stat().st_size
        except OSError:
            raise StoreError(f"{index}: segment {info.file} ({info.rows:,} rows of {info.name}) does not exist in "
                             f"{directory}; the file cannot be read whole (was the folder moved or edited?)") from None
        if info.bytes and size != info.bytes:
            raise StoreError(f"{index}: segment {info.file} has {size:,} bytes, not the {info.bytes:,} it was "
                             "written with; the file is damaged")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def write_image(path: Path, build: Callable[[h5py.File], None]) -> int:
    """Build an HDF5 file in memory with ``build``, write it to ``path`` durably; return its size."""
    handle = h5py.File(f"embedx-mem-{uuid.uuid4().hex}", "w", driver="core", backing_store=False)
    try:
        build(handle)
        handle.flush()
        image = handle.id.get_file_image()
    finally:
        handle.close()
    write_bytes(path, image)
    return len(image)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary name, fsync, rename to ``path``; a full disk leaves nothing behind."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise resource_error(exc, path, len(data)) from None


def segment_name(kind: str, name: str, lo: int, hi: int, part: int = 0) -> str:
    tag = f"{lo:08d}-{hi:08d}" if kind == SET else f"{lo:08d}-{'final' if kind == INPUT_FINAL else f'{part:06d}'}"
    return f"{kind}@{L.safe_name(name)}@{tag}@{uuid.uuid4().hex[:8]}.h5"


def _stamp(handle: h5py.File, kind: str, name: str, lo: int, hi: int, rows: int, meta: dict[str, Any],
           part: int = 0, tokens: dict[str, int] | None = None) -> None:
    handle.attrs.update({"format": L.SEGMENT_FORMAT, "kind": kind, "name": name, "lo": lo, "hi": hi, "part": part,
                         "rows": rows, "meta": json.dumps(meta, sort_keys=True), "tokens": json.dumps(tokens or {}),
                         "created": now()})


def _dataset(group: h5py.Group, name: str, data: np.ndarray, compression: str | None = None, dtype: Any = None) -> None:
    n = len(data)
    if n == 0:
        group.create_dataset(name, shape=data.shape, dtype=dtype or data.dtype)
        return
    row_bytes = max(1, int(np.prod(data.shape[1:], dtype=np.int64)) * (data.dtype.itemsize if data.dtype.kind != "O" else 16))
    chunks = (min(n, L.chunk_rows(row_bytes)), *data.shape[1:])
    group.create_dataset(name, data=data, dtype=dtype or data.dtype, chunks=chunks, compression=compression,
                         shuffle=bool(compression) and data.dtype.kind != "O")


def write_set_segment(directory: Path, name: str, meta: dict[str, Any], lo: int, hi: int,
                      arrays: dict[str, np.ndarray], bases: dict[str, int]) -> SegmentInfo:
    """Write the rows in ``arrays`` (the batch layout of :class:`embedx.validate.BatchChecker`).

    ``bases`` gives, per token output, how many token rows the set holds before this segment.
    """
    keys = arrays["keys"]
    rows = len(keys)
    compression = meta.get("compression") or None
    tokens: dict[str, int] = {}
    sorted_keys, order = as_sorted_index(hex_to_binary(keys))

    def build(handle: h5py.File) -> None:
        _dataset(handle, L.KEYS, np.asarray(keys, dtype=L.KEY_DTYPE))
        _dataset(handle, L.TRUNCATED, np.asarray(arrays["truncated"], dtype=np.int32))
        _dataset(handle, L.SORTED_KEYS, sorted_keys)
        _dataset(handle, L.SORTED_ROWS, order)
        for out in meta["outputs"]:
            sub = handle.create_group(out["name"])
            sub.attrs.update({"level": out["level"], "dim": out["dim"], "per_layer": bool(out.get("per_layer"))})
            prefix = out["name"] + "."
            values = arrays[prefix + L.VALUES]
            _dataset(sub, L.VALUES, values, compression)
            if out["level"] == "token":
                offsets = np.asarray(arrays[prefix + L.OFFSETS], dtype=np.int64)
                _dataset(sub, L.OFFSETS, offsets + int(bases.get(out["name"], 0)))
                words = unpack_strings(arrays[prefix + "tokens.bytes"], arrays[prefix + "tokens.offsets"])
                _dataset(sub, L.TOKENS, np.array(words, dtype=object), compression, dtype=STRING)
                tokens[out["name"]] = int(offsets[-1])
        _stamp(handle, SET, name, lo, hi, rows, meta, tokens=tokens)

    file = segment_name(SET, name, lo, hi)
    size = write_image(directory / file, build)
    return SegmentInfo(file, SET, name, lo, hi, rows, size, tokens=tokens)


def read_set_arrays(path: Path, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """A set segment's rows back in the batch layout (token offsets local again), for merging."""
    from embedx.store.packing import pack_strings

    with open_segment(path) as handle:
        arrays = {"keys": handle[L.KEYS][:], "truncated": handle[L.TRUNCATED][:]}
        for out in meta["outputs"]:
            sub, prefix = handle[out["name"]], out["name"] + "."
            arrays[prefix + L.VALUES] = sub[L.VALUES][:]
            if out["level"] == "token":
                offsets = sub[L.OFFSETS][:]
                arrays[prefix + L.OFFSETS] = offsets - offsets[0]
                arrays[prefix + "tokens.bytes"], arrays[prefix + "tokens.offsets"] = pack_strings(
                    list(sub[L.TOKENS].asstr()[:]))
    return arrays


def write_input_piece(directory: Path, name: str, generation: int, part: int, columns: dict[str, np.ndarray],
                      store_text: bool) -> SegmentInfo:
    """One run of input rows: ``columns`` holds keys, empty, line, text and ``raw/<i>`` column text."""
    rows = len(columns[L.KEYS])

    def build(handle: h5py.File) -> None:
        _dataset(handle, L.KEYS, columns[L.KEYS])
        _dataset(handle, L.EMPTY, columns[L.EMPTY])
        _dataset(handle, L.LINE, columns[L.LINE])
        if store_text:
            _dataset(handle, L.TEXT, columns[L.TEXT], dtype=STRING)
        raw = handle.create_group(L.RAW)
        for key, values in columns.items():
            if key.startswith(L.RAW + "/"):
                _dataset(raw, key.split("/", 1)[1], values, dtype=STRING)
        _stamp(handle, INPUT, name, generation, generation, rows, {}, part=part)

    file = segment_name(INPUT, name, generation, generation, part)
    size = write_image(directory / file, build)
    return SegmentInfo(file, INPUT, name, generation, generation, rows, size, part=part)


def write_input_final(directory: Path, name: str, generation: int, parts: int, rows: int, meta: dict[str, Any],
                      typed: dict[str, np.ndarray]) -> SegmentInfo:
    """The last piece of an input: its metadata (columns, digest, source) and any typed columns."""

    def build(handle: h5py.File) -> None:
        group = handle.create_group(L.COLUMNS)
        for index, values in typed.items():
            _dataset(group, index, values)
        _stamp(handle, INPUT_FINAL, name, generation, generation, rows, meta, part=parts)

    file = segment_name(INPUT_FINAL, name, generation, generation)
    size = write_image(directory / file, build)
    return SegmentInfo(file, INPUT_FINAL, name, generation, generation, rows, size, part=parts)


def open_segment(path: Path) -> h5py.File:
    """Open a segment file read-only after checking its structure (no links, no foreign data)."""
    from embedx.store.verify import verify_structure

    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise StoreError(f"segment {path} is unreadable ({str(exc).splitlines()[0][:160]})") from None
    try:
        verify_structure(handle, path)
        if handle.attrs.get("format") != L.SEGMENT_FORMAT:
            raise StoreError(f"{path} is not an embedx segment file")
    except BaseException:
        handle.close()
        raise
    return handle


def read_info(path: Path) -> tuple[SegmentInfo, dict[str, Any]]:
    """A segment's description and metadata, after checking that its datasets match its attributes."""
    try:
        with open_segment(path) as handle:
            attrs = handle.attrs
            kind, name = str(attrs["kind"]), str(attrs["name"])
            meta = json.loads(attrs["meta"])
            tokens = {str(k): int(v) for k, v in json.loads(attrs["tokens"]).items()}
            info = SegmentInfo(path.name, kind, name, int(attrs["lo"]), int(attrs["hi"]), int(attrs["rows"]),
                               path.stat().st_size, int(attrs["part"]), tokens)
            _check_lengths(handle, info, meta)
    except StoreError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise StoreError(f"segment {path} is damaged ({type(exc).__name__}: {str(exc)[:160]})") from None
    return info, meta


def _check_lengths(handle: h5py.File, info: SegmentInfo, meta: dict[str, Any]) -> None:
    def need(ds: str, length: int) -> None:
        if ds not in handle or handle[ds].shape[:1] != (length,):
            raise ValueError(f"{ds} does not hold {length} rows")

    if info.kind == SET:
        for ds in (L.KEYS, L.TRUNCATED, L.SORTED_ROWS, L.SORTED_KEYS):
            need(ds, info.rows)
        for out in meta["outputs"]:
            if out["level"] == "document":
                need(f"{out['name']}/{L.VALUES}", info.rows)
            else:
                count = info.tokens.get(out["name"], 0)
                need(f"{out['name']}/{L.OFFSETS}", info.rows + 1)
                need(f"{out['name']}/{L.VALUES}", count)
                need(f"{out['name']}/{L.TOKENS}", count)
    elif info.kind == INPUT:
        for ds in (L.KEYS, L.EMPTY, L.LINE):
            need(ds, info.rows)
    elif info.kind != INPUT_FINAL:
        raise ValueError(f"unknown segment kind {info.kind!r}")


def read_key_index(path: Path, rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A set segment's sorted keys, their rows and its ``truncated`` column, checked and read.

    Every run reads these from every segment, so instead of the whole-file verification of
    :func:`open_segment` only what is read is checked: reached through hard links only, stored
    in this file (not virtual, not external), unfiltered, and of the expected dtype and length.
    """
    try:
        with h5py.File(path, "r") as handle:
            keys = _plain(handle, L.SORTED_KEYS, np.dtype(np.uint8), (rows, 16), path)
            order = _plain(handle, L.SORTED_ROWS, np.dtype(np.uint32), (rows,), path)
            truncated = _plain(handle, L.TRUNCATED, np.dtype(np.int32), (rows,), path)
            return keys[:], order[:], truncated[:]
    except OSError as exc:
        raise StoreError(f"segment {path} is unreadable ({str(exc).splitlines()[0][:160]})") from None


def _plain(handle: h5py.File, name: str, dtype: np.dtype, shape: tuple[int, ...], path: Path) -> h5py.Dataset:
    group: h5py.Group = handle
    parts = name.split("/")
    for depth, part in enumerate(parts):
        if part not in group or group.id.links.get_info(part.encode()).type != h5py.h5l.TYPE_HARD:
            raise StoreError(f"segment {path}: {name} is missing or a link; refusing to read it")
        if depth < len(parts) - 1:
            group = group[part]
    ds = group[parts[-1]]
    if (not isinstance(ds, h5py.Dataset) or ds.is_virtual or ds.external or ds.dtype != dtype or ds.shape != shape
            or ds.id.get_create_plist().get_nfilters()):
        raise StoreError(f"segment {path}: {name} is not a plain {dtype} dataset of shape {shape}; refusing to read it")
    return ds


def token_base(path: Path, output: str) -> int:
    """The first absolute token offset of a set segment's token output."""
    with open_segment(path) as handle:
        return int(handle[output][L.OFFSETS][0])
