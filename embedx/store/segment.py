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
import stat
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from embedx.contract.errors import StoreError
from embedx.store import layout as L
from embedx.store.keyindex import as_sorted_index, hex_to_binary
from embedx.store.packing import unpack_strings
from embedx.store.sidepaths import SideFolder, check_plain_file, is_segment_name, kind_of, refusal, replace_file
from embedx.wording import plural

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
        """One line of an index's ``segments`` dataset, every field checked (the file is untrusted).

        Raises ``ValueError`` naming the field; callers add the file."""
        try:
            data = json.loads(text)
        except RecursionError:
            raise ValueError("it is nested too deeply") from None
        if not isinstance(data, dict):
            raise ValueError("a line is not a JSON object")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"a line has the unknown field {sorted(unknown)[0][:40]!r}")
        missing = {"file", "kind", "name", "lo", "hi", "rows"} - set(data)
        if missing:
            raise ValueError(f"a line lacks the field {sorted(missing)[0]!r}")
        file = data["file"]
        if not isinstance(file, str) or not is_segment_name(file):
            raise ValueError(f"field 'file' is {str(file)[:80]!r}, not the name of a segment file")
        if data["kind"] not in (SET, INPUT, INPUT_FINAL):
            raise ValueError(f"field 'kind' of {file} is {str(data['kind'])[:40]!r}")
        if not isinstance(data["name"], str) or not data["name"]:
            raise ValueError(f"field 'name' of {file} is {str(data['name'])[:40]!r}, expected a name")
        numbers = {key: checked_count(data.get(key, 0), key, file) for key in ("lo", "hi", "rows", "bytes", "part")}
        tokens = data.get("tokens", {})
        if not isinstance(tokens, dict):
            raise ValueError(f"field 'tokens' of {file} is not an object")
        tokens = {str(k): checked_count(v, f"tokens.{k}"[:60], file) for k, v in tokens.items()}
        return cls(file, data["kind"], data["name"], tokens=tokens, **numbers)


MAX_COUNT = 2**62  # sequence numbers, rows, bytes: far beyond any store, small enough for int64 arithmetic


def checked_count(value: Any, field_name: str, where: str) -> int:
    """``value`` as a non-negative integer (not a bool, not a float), or ``ValueError`` naming the field."""
    if isinstance(value, np.generic) and value.shape == ():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"field {field_name!r} of {where} is {str(value)[:40]!r}, expected a non-negative integer")
    if not 0 <= value <= MAX_COUNT:
        raise ValueError(f"field {field_name!r} of {where} is {value}, outside 0..{MAX_COUNT}")
    return value


def check_segments_present(index: Path, infos: list[SegmentInfo]) -> None:
    """Every segment the index maps must be there, whole: HDF5 would read a missing one as fill values."""
    directory = L.segment_dir(index)
    for info in infos:
        try:
            st = os.lstat(directory / info.file)
        except OSError:
            raise StoreError(f"{index}: segment {info.file} ({plural(info.rows, 'row')} of {info.name}) does not "
                             f"exist in {directory}; the file cannot be read whole (was the folder moved or "
                             "edited?)") from None
        if not stat.S_ISREG(st.st_mode):
            raise refusal(directory / info.file, "a segment file", kind_of(st))
        size = st.st_size
        if info.bytes and size != info.bytes:
            raise StoreError(f"{index}: segment {info.file} has {size:,} bytes, not the {info.bytes:,} it was "
                             "written with; the file is damaged")


def read_segment_list(handle: Any, path: Path) -> list[SegmentInfo]:
    """The index's ``segments`` dataset, every line and field checked; one line naming the field if not."""
    if L.SEGMENTS not in handle:
        return []
    try:
        lines = handle[L.SEGMENTS].asstr()[:]
        infos = []
        for number, text in enumerate(lines):
            try:
                infos.append(SegmentInfo.from_json(text))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"line {number}: {exc}") from None
    except (ValueError, TypeError, UnicodeDecodeError, OSError) as exc:
        raise StoreError(f"{path}: its segment list (/{L.SEGMENTS}) is damaged ({str(exc)[:200]}); "
                         "move the file aside") from None
    names = [i.file for i in infos]
    if len(set(names)) != len(names):
        raise StoreError(f"{path}: its segment list (/{L.SEGMENTS}) names a segment file twice; the index is damaged")
    return infos


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def write_image(path: Path, build: Callable[[h5py.File], None], index: bool = False) -> int:
    """Build an HDF5 file in memory with ``build``, write it to ``path`` durably; return its size.

    ``path`` is a segment file in a segment folder (never followed if it is a link), or with
    ``index`` the feature file itself, in the user's own folder."""
    handle = h5py.File(f"embedx-mem-{uuid.uuid4().hex}", "w", driver="core", backing_store=False)
    try:
        build(handle)
        handle.flush()
        image = handle.id.get_file_image()
    finally:
        handle.close()
    if index:
        replace_file(path, image)
    else:
        write_bytes(path, image)
    return len(image)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a fresh temporary name in ``path``'s segment folder, fsync, rename to ``path``.

    The folder is opened without following a link, and must be the user's own; a full disk
    leaves nothing behind."""
    folder = SideFolder.open(path.parent, "the segment folder")
    if folder is None:
        raise StoreError(f"cannot write {path}: the folder {path.parent} does not exist")
    with folder:
        folder.write_atomic(path.name, data)


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
    row_bytes = max(
        1, int(np.prod(data.shape[1:], dtype=np.int64)) * (data.dtype.itemsize if data.dtype.kind != "O" else 16)
    )
    chunks = (min(n, L.chunk_rows(row_bytes)), *data.shape[1:])
    group.create_dataset(name, data=data, dtype=dtype or data.dtype, chunks=chunks, compression=compression,
                         shuffle=bool(compression) and data.dtype.kind != "O")


def write_set_segment(directory: Path, name: str, meta: dict[str, Any], lo: int, hi: int,
                      arrays: dict[str, np.ndarray], bases: dict[str, int]) -> SegmentInfo:
    """Write the rows in ``arrays`` (the batch layout of :class:`embedx.pipeline.output_checks.BatchChecker`).

    ``bases`` gives, per token output, how many token rows the set holds before this segment.
    """
    keys = arrays["keys"]
    rows = len(keys)
    compression = meta.get("compression") or None
    tokens: dict[str, int] = {}
    sorted_keys, order = as_sorted_index(hex_to_binary(keys))

    def build(handle: h5py.File) -> None:
        _dataset(handle, L.KEYS, np.asarray(keys, dtype=L.KEY_DTYPE))
        # Contiguous (not chunked): lookups memory-map these three (embedx.store.lookup).
        handle.create_dataset(L.TRUNCATED, data=np.asarray(arrays["truncated"], dtype=np.int32))
        handle.create_dataset(L.SORTED_KEYS, data=sorted_keys)
        handle.create_dataset(L.SORTED_ROWS, data=order)
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

    check_plain_file(path)
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
            kind, name = _text_attr(attrs, "kind"), _text_attr(attrs, "name")
            if kind not in (SET, INPUT, INPUT_FINAL):
                raise ValueError(f"attribute 'kind' is {kind[:40]!r}")
            meta = json.loads(_text_attr(attrs, "meta"))
            if not isinstance(meta, dict):
                raise ValueError("attribute 'meta' is not a JSON object")
            if kind == SET and not _outputs_ok(meta.get("outputs")):
                raise ValueError("attribute 'meta' lists no well-formed outputs")
            tokens = json.loads(_text_attr(attrs, "tokens"))
            if not isinstance(tokens, dict):
                raise ValueError("attribute 'tokens' is not a JSON object")
            where = "the segment"
            tokens = {str(k): checked_count(v, f"tokens.{k}"[:60], where) for k, v in tokens.items()}
            numbers = [checked_count(_attr_value(attrs, key), key, where) for key in ("lo", "hi", "rows", "part")]
            info = SegmentInfo(path.name, kind, name, numbers[0], numbers[1], numbers[2],
                               os.lstat(path).st_size, numbers[3], tokens)
            _check_lengths(handle, info, meta)
    except StoreError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, AttributeError, RecursionError) as exc:
        text = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise StoreError(f"segment {path} is damaged ({type(exc).__name__}: {text})") from None
    return info, meta


def _attr_value(attrs: Any, key: str) -> Any:
    if key not in attrs:
        raise ValueError(f"attribute {key!r} is missing")
    value = attrs[key]
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    elif isinstance(value, np.generic):
        value = value.item()
    return value


def _text_attr(attrs: Any, key: str) -> str:
    value = _attr_value(attrs, key)
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        raise ValueError(f"attribute {key!r} is not text")
    return value


def _outputs_ok(outputs: Any) -> bool:
    return isinstance(outputs, list) and bool(outputs) and all(
        isinstance(o, dict) and isinstance(o.get("name"), str) and o.get("level") in ("document", "token")
        for o in outputs)


def _check_lengths(handle: h5py.File, info: SegmentInfo, meta: dict[str, Any]) -> None:
    def need(ds: str, length: int) -> None:
        if ds not in handle or handle[ds].shape[:1] != (length,):
            raise ValueError(f"{ds} does not hold {length} rows")

    if info.kind == SET:
        for ds in (L.KEYS, L.TRUNCATED, L.SORTED_ROWS, L.SORTED_KEYS):
            need(ds, info.rows)
        order = handle[L.SORTED_ROWS]
        if info.rows and order.dtype.kind in "iu" and int(order[:].max()) >= info.rows:  # lookups trust it after this
            raise ValueError(f"{L.SORTED_ROWS} names row {int(order[:].max()):,} of {info.rows:,}")
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
    in this file (not virtual, not external), unfiltered, and of the expected dtype and length;
    and every row ``index/rows`` names lies in the segment. Whether each sorted key is the key
    stored at its row is checked where a row is served (:meth:`embedx.store.reader.FeatureSet.rows`)
    and in full by ``embedx check`` (:func:`verify_key_index`).
    """
    check_plain_file(path)
    try:
        with h5py.File(path, "r") as handle:
            keys = _plain(handle, L.SORTED_KEYS, np.dtype(np.uint8), (rows, 16), path)
            order = _plain(handle, L.SORTED_ROWS, np.dtype(np.uint32), (rows,), path)
            truncated = _plain(handle, L.TRUNCATED, np.dtype(np.int32), (rows,), path)
            keys, order, truncated = keys[:], order[:], truncated[:]
    except OSError as exc:
        raise StoreError(f"segment {path} is unreadable ({str(exc).splitlines()[0][:160]})") from None
    if rows and int(order.max()) >= rows:
        raise StoreError(f"segment {path}: {L.SORTED_ROWS} names row {int(order.max()):,}, but the segment has "
                         f"{rows:,} rows; the file is damaged (refusing to read it)")
    return keys, order, truncated


_HEX_PAIRS = np.frombuffer(b"".join(b"%02x" % i for i in range(256)), dtype=np.uint16)  # byte -> its 2 hex digits


def verify_key_index(path: Path, rows: int) -> None:
    """Check a set segment's key index against its stored keys, in full: ``index/rows`` is a
    permutation of its rows, ``index/keys`` is strictly sorted, and each sorted key is the key
    stored at the row it names. Raises :class:`StoreError` naming the segment."""
    sorted_keys, order, _ = read_key_index(path, rows)
    try:
        with h5py.File(path, "r") as handle:
            stored = _plain(handle, L.KEYS, np.dtype(L.KEY_DTYPE), (rows,), path)[:]
    except OSError as exc:
        raise StoreError(f"segment {path} is unreadable ({str(exc).splitlines()[0][:160]})") from None
    if rows == 0:
        return
    if np.bincount(order, minlength=rows).max() != 1:
        raise StoreError(f"segment {path}: {L.SORTED_ROWS} names a row twice, so it is not a permutation of the "
                         "segment's rows; the file is damaged")
    expected = _HEX_PAIRS[sorted_keys].view("S32").reshape(-1)  # the sorted keys as the hex text stored
    wrong = np.flatnonzero(stored[order] != expected)
    if len(wrong):
        raise StoreError(f"segment {path}: {L.SORTED_KEYS} and {L.SORTED_ROWS} disagree with its stored keys "
                         f"({len(wrong):,} of {rows:,} rows, first at row {int(order[wrong[0]]):,}), so lookups "
                         "would serve one text's features for another; the file is damaged")
    if rows > 1 and not np.all(expected[1:] > expected[:-1]):
        raise StoreError(f"segment {path}: {L.SORTED_KEYS} is not strictly sorted; the file is damaged")


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
        value = handle[output][L.OFFSETS][0]
        return checked_count(value.item() if isinstance(value, np.generic) else value, f"{output}/{L.OFFSETS}",
                             str(path))
