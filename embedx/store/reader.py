"""Read features back, aligned with any input: by text, by input table, or by content key."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from embedx.contract.errors import StoreError
from embedx.pipeline.keys import content_key
from embedx.store import layout as L
from embedx.store import lease
from embedx.store.keyindex import KeyIndex, as_sorted_index, hex_to_binary
from embedx.store.lookup import StoredKeys
from embedx.store.open import open_checked
from embedx.store.segment import SegmentInfo, check_segments_present, read_segment_list

_release = lease.release


@dataclass(frozen=True)
class SetInfo:
    name: str
    embedder: str
    plugin: str
    config_hash: str
    config: dict[str, Any]
    outputs: list[dict[str, Any]]
    dtype: str
    rows: int
    bytes_on_disk: int
    created: str
    updated: str


class FeatureStore:
    """An open feature file (read-only). Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # Through symlinks: HDF5 finds segments relative to the index's real folder.
        real = Path(os.path.realpath(self.path)) if self.path.exists() else self.path
        # The lease first, then the index: no compaction deletes a segment this reader maps (embedx.store.lease).
        self._lease = lease.take(real)
        try:
            self.file = open_checked(real)
        except BaseException:
            lease.release(self._lease)
            self._lease = None
            raise
        self.segments: dict[str, list[SegmentInfo]] | None = None  # format 1 files have none
        if L.SEGMENTS in self.file:
            self.segments = {}
            try:
                infos = read_segment_list(self.file, self.path)
                check_segments_present(Path(self.file.filename), infos)
            except StoreError:
                self.close()
                raise
            for info in infos:
                if info.kind == "set":
                    self.segments.setdefault(info.name, []).append(info)

    @property
    def segment_dir(self) -> Path:
        return L.segment_dir(Path(self.file.filename))

    def close(self) -> None:
        self.file.close()
        lease, self._lease = self._lease, None
        _release(lease)

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # feature sets -------------------------------------------------------
    def sets(self) -> list[SetInfo]:
        return [self._info(name) for name in self.file[L.SETS]]

    def _info(self, name: str) -> SetInfo:
        segments = None if self.segments is None else self.segments.get(name, [])
        return _set_info(name, self.file[L.SETS][name], segments)

    def feature_set(self, embedder: str, config_hash: str | None = None) -> FeatureSet:
        """The set for ``embedder`` (an id or a set name).

        ``config_hash`` (a prefix will do) picks among configurations.
        """
        sets = self.file[L.SETS]
        if embedder in sets:
            return FeatureSet(self, sets[embedder])
        matches = [s for s in self.sets() if s.embedder == embedder
                   and (config_hash is None or s.config_hash.startswith(config_hash))]
        if len(matches) == 1:
            return FeatureSet(self, sets[matches[0].name])
        if not matches:
            have = ", ".join(f"{s.embedder} ({s.config_hash[:12]})" for s in self.sets()) or "none"
            raise StoreError(f"{self.path} has no feature set for embedder {embedder!r}"
                             f"{'' if config_hash is None else f' with configuration {config_hash}'} (it has: {have})")
        from embedx.store.config_diff import differences

        listing = differences({m.config_hash[:12]: m.config for m in matches})
        raise StoreError(f"{self.path} has {len(matches)} configurations of {embedder!r}; choose one with its "
                         f"configuration hash (--config / config_hash=); they differ in:\n{listing}")

    # input tables -------------------------------------------------------
    def input_names(self) -> list[str]:
        return list(self.file[L.INPUTS])

    def input(self, name: str | None = None) -> InputTable:
        names = self.input_names()
        if name is None:
            if len(names) != 1:
                raise StoreError(f"{self.path} holds {len(names)} inputs ({', '.join(names) or 'none'}); name one")
            name = names[0]
        key = name if name in self.file[L.INPUTS] else L.safe_name(name)
        if key not in self.file[L.INPUTS]:
            raise StoreError(f"{self.path} has no input {name!r} (it has: {', '.join(names) or 'none'})")
        return InputTable(self.file[L.INPUTS][key])

    def key_index(self, name: str) -> KeyIndex | StoredKeys:
        """Cached-key lookup for set ``name``: each segment's sorted keys, searched where they lie
        (:mod:`embedx.store.lookup`); format 1: sorted here."""
        if self.segments is None:
            index = KeyIndex()
            index.add(*as_sorted_index(hex_to_binary(self.file[L.SETS][name][L.KEYS][:])), base=0)
            return index
        return StoredKeys.open(self.segment_dir, self.segments.get(name, []))


class InputTable:
    """The rows of one input file as extracted: content keys in input order, text, flags, columns."""

    def __init__(self, group: h5py.Group):
        self.group = group
        self.name = group.name.rsplit("/", 1)[-1]

    def __len__(self) -> int:
        return int(self.group[L.KEYS].shape[0])

    @property
    def keys(self) -> np.ndarray:
        return np.asarray(self.group[L.KEYS][:])

    @property
    def texts(self) -> list[str]:
        if L.TEXT not in self.group:
            raise StoreError(f"input {self.name!r} was extracted without --store-text")
        return [t.decode("utf-8") if isinstance(t, bytes) else t for t in self.group[L.TEXT][:]]

    @property
    def empty(self) -> np.ndarray:
        return np.asarray(self.group[L.EMPTY][:])

    @property
    def lines(self) -> np.ndarray:
        return np.asarray(self.group[L.LINE][:])

    @property
    def columns(self) -> list[str]:
        return [self.group[L.COLUMNS][c].attrs.get("name", c) for c in self.group[L.COLUMNS]]

    def column(self, name: str) -> np.ndarray:
        cols = self.group[L.COLUMNS]
        named = [c for c in cols if cols[c].attrs.get("name", c) == name]
        key = named[0] if named else name if name in cols else L.safe_name(name)
        if key not in cols:
            raise StoreError(f"input {self.name!r} has no column {name!r} (it has: "
                             f"{', '.join(self.columns) or 'none'})")
        values = cols[key][:]
        if values.dtype.kind == "O":
            values = np.array([v.decode("utf-8") if isinstance(v, bytes) else v for v in values], dtype=object)
        return np.asarray(values)


CHECK_ROWS = 1 << 20  # keys checked per read where rows are served (32 MB)


class FeatureSet:
    """One embedder configuration's features. Rows are looked up by content key."""

    def __init__(self, store: FeatureStore, group: h5py.Group):
        self.store = store
        self.group = group
        self.info = store._info(group.name.rsplit("/", 1)[-1])
        self._index: KeyIndex | StoredKeys | None = None

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        return {o["name"]: o for o in self.info.outputs}

    def __len__(self) -> int:
        return self.info.rows

    def _row_index(self) -> KeyIndex | StoredKeys:
        if self._index is None:
            self._index = self.store.key_index(self.info.name)
        return self._index

    def rows(self, texts: Sequence[str] | None = None, *, input: str | None = None,
             keys: Sequence[bytes | str] | np.ndarray | None = None) -> np.ndarray:
        """Row numbers in this set for the given texts (or input table, or keys), in their order."""
        wanted = self._keys(texts, input, keys)
        try:
            binary = hex_to_binary(wanted)
        except ValueError as exc:
            raise StoreError(f"{exc}; content keys are 32 hex digits") from None
        rows = self._row_index().lookup(binary)
        missing = int((rows < 0).sum())
        if missing:
            raise StoreError(f"{missing} of {len(rows)} texts have no features in set {self.info.name} of "
                             f"{self.store.path}; run `embedx extract` for them first")
        self._check_served(rows, binary)
        return rows

    def _check_served(self, rows: np.ndarray, binary: np.ndarray) -> None:
        """Each row found must store the key it was found for: a segment's key index (``index/keys``,
        ``index/rows``) that disagrees with its stored keys would serve one text's features for another.
        One read of the keys of the rows served (32 bytes a row), so the check stays on."""
        if self.store.segments is None or not len(rows):
            return
        for start in range(0, len(rows), CHECK_ROWS):  # bounded memory for any number of rows
            chunk = rows[start:start + CHECK_ROWS]
            stored = gather(self.group[L.KEYS], chunk)
            try:
                good = hex_to_binary(stored) == binary[start:start + CHECK_ROWS]
            except ValueError:
                good = np.zeros(len(chunk), dtype=bool)
            if not good.all():
                self._refuse_mismatch(chunk, good)

    def _refuse_mismatch(self, rows: np.ndarray, good: np.ndarray) -> None:
        _refuse_gone(self.group[L.KEYS])  # a segment file that is gone reads as anything but its keys
        first = int(np.flatnonzero(~good)[0])
        row, base, file = int(rows[first]), 0, "?"
        for info in self.store.segments.get(self.info.name, []):  # type: ignore[union-attr]
            if row < base + info.rows:
                file = info.file
                break
            base += info.rows
        raise StoreError(f"{self.store.segment_dir / file}: its key index ({L.SORTED_KEYS}, {L.SORTED_ROWS}) maps a "
                         f"key to row {row - base:,}, which stores another key ({int((~good).sum()):,} of "
                         f"{len(rows):,} rows asked for), so it would serve one text's features for another; the "
                         "file is damaged (run `embedx check` on it)")

    def _keys(self, texts: Sequence[str] | None, input: str | None,
              keys: Sequence[str | bytes] | np.ndarray | None) -> np.ndarray:
        given = sum(x is not None for x in (texts, input, keys))
        if given > 1:
            raise ValueError("pass only one of texts, input, keys")
        if texts is not None:
            if isinstance(texts, str):
                raise TypeError("texts must be a list of strings, not one string")
            return np.array([content_key(t) for t in texts], dtype=L.KEY_DTYPE)
        if keys is not None:
            return np.array([k.encode("ascii") if isinstance(k, str) else bytes(k) for k in keys], dtype=L.KEY_DTYPE)
        return np.asarray(self.store.input(input).keys, dtype=L.KEY_DTYPE)

    def output_spec(self, output: str | None, level: str) -> dict[str, Any]:
        if output is None:
            candidates = [o for o in self.info.outputs if o["level"] == level]
            if not candidates:
                raise StoreError(f"set {self.info.name} has no {level}-level output")
            return candidates[0]
        if output not in self.outputs:
            raise StoreError(f"set {self.info.name} has no output {output!r} (it has: {', '.join(self.outputs)})")
        spec = self.outputs[output]
        if spec["level"] != level:
            raise StoreError(f"output {output!r} of set {self.info.name} is {spec['level']}-level, not {level}-level")
        return spec

    def vectors(self, texts: Sequence[str] | None = None, *, input: str | None = None,
                keys: Sequence[bytes | str] | np.ndarray | None = None, output: str | None = None) -> np.ndarray:
        """Document vectors ``[n, dim]`` aligned with the texts (duplicates repeated)."""
        spec = self.output_spec(output, "document")
        return gather(self.group[spec["name"]][L.VALUES], self.rows(texts, input=input, keys=keys))

    def iter_vectors(self, texts: Sequence[str] | None = None, *, input: str | None = None,
                     keys: Sequence[bytes | str] | np.ndarray | None = None, output: str | None = None,
                     chunk_size: int = 8192) -> Iterator[np.ndarray]:
        """Document vectors in chunks of ``chunk_size`` rows, in input order, never all in memory."""
        spec = self.output_spec(output, "document")
        rows = self.rows(texts, input=input, keys=keys)
        values = self.group[spec["name"]][L.VALUES]
        for start in range(0, len(rows), chunk_size):
            yield gather(values, rows[start:start + chunk_size])

    def to_pandas(self, input: str | None = None, *, output: str | None = None, column: str = "vector") -> Any:
        """A ``pandas.DataFrame`` of one input table: index = input rows, columns = ``line``, ``text`` (if
        stored), the input's columns, ``key``, then ``column`` with each row's vector (an array).

        For a token output, ``column`` holds ``[n_tokens, (layers,) dim]`` arrays and ``tokens`` their strings.
        Everything is in memory: for large inputs, stream with :mod:`embedx.readers` instead.
        """
        import pandas as pd

        table = self.store.input(input)
        data: dict[str, Any] = {"line": table.lines}
        if L.TEXT in table.group:
            data["text"] = table.texts
        for name in table.columns:
            data[name] = table.column(name)
        data["key"] = [k.decode("ascii") for k in table.keys.tolist()]
        level = self.outputs[output]["level"] if output in self.outputs else "document"
        if output is None and not any(o["level"] == "document" for o in self.info.outputs):
            level = "token"
        if column in data or (level == "token" and column == "tokens"):
            raise ValueError(f"column={column!r} is taken by the input table; choose another name")
        if level == "token":
            pairs = self.tokens(input=table.name, output=output)
            data["tokens"] = [t for t, _ in pairs]
            data[column] = [v for _, v in pairs]
        else:
            data[column] = list(self.vectors(input=table.name, output=output))
        return pd.DataFrame(data, index=pd.RangeIndex(len(table), name="row"))

    def truncated(self, texts: Sequence[str] | None = None, *, input: str | None = None) -> np.ndarray:
        """Tokens cut by ``max_length`` for each text (0 where nothing was cut)."""
        return gather(self.group[L.TRUNCATED], self.rows(texts, input=input))

    def tokens(
        self,
        texts: Sequence[str] | None = None,
        *,
        input: str | None = None,
        keys: Sequence[bytes | str] | np.ndarray | None = None,
        output: str | None = None,
    ) -> list[tuple[list[str], np.ndarray]]:
        """Per text, its tokens and their vectors ``[n_tokens, (layers,) dim]``."""
        spec = self.output_spec(output, "token")
        sub = self.group[spec["name"]]
        offsets = sub[L.OFFSETS]
        result = []
        for row in self.rows(texts, input=input, keys=keys):
            start, stop = offsets[row], offsets[row + 1]
            toks = [t.decode("utf-8") if isinstance(t, bytes) else t for t in sub[L.TOKENS][start:stop]]
            values = sub[L.VALUES][start:stop]
            missing_rows(sub[L.VALUES], values)
            result.append((toks, values))
        return result


def gather(dataset: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """``dataset[rows]`` for any row order with repeats, reading each needed block once."""
    result = _gather(dataset, rows)
    if dataset.is_virtual:
        missing_rows(dataset, result)
    return result


def missing_rows(dataset: h5py.Dataset, values: np.ndarray) -> None:
    """Refuse what a virtual dataset returns for a segment file that is gone (NaN, -1: never stored)."""
    kind = values.dtype.kind
    gone = np.isnan(values).any() if kind == "f" else (values < 0).any() if kind == "i" else False
    if not gone:
        return
    _refuse_gone(dataset)
    what = "NaN" if kind == "f" else "negative numbers"
    raise StoreError(f"{dataset.file.filename}: rows of {dataset.name} hold {what}, which embedx never stores, so "
                     f"a segment file it maps is damaged; run `embedx check {dataset.file.filename}` to find it, "
                     "and re-extract into a new file")


def _refuse_gone(dataset: h5py.Dataset) -> None:
    """Raise if a segment file that ``dataset`` maps is gone (HDF5 reads it as fill values)."""
    base = Path(dataset.file.filename).parent
    sources = dataset.virtual_sources() if dataset.is_virtual else []
    absent = sorted({s.file_name for s in sources if not (base / s.file_name).is_file()})
    if absent:
        raise StoreError(f"{dataset.file.filename}: rows of {dataset.name} read as missing: a segment file it maps is "
                         f"gone ({absent[0]}: removed by hand, or replaced by a compaction while this file was "
                         "open without a reader's lease); open the file again")


def _gather(dataset: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    if len(rows) == 0:
        return np.empty((0, *dataset.shape[1:]), dtype=dataset.dtype)
    unique, inverse = np.unique(rows, return_inverse=True)
    lo, hi = int(unique[0]), int(unique[-1]) + 1
    row_bytes = dataset.dtype.itemsize * int(np.prod(dataset.shape[1:], dtype=np.int64))
    if (hi - lo) <= 4 * len(unique) or (hi - lo) * row_bytes <= (64 << 20):
        block = dataset[lo:hi]
        return np.asarray(block[unique - lo][inverse])
    # Sparse selection across a big set: read runs of consecutive rows.
    parts = []
    breaks = np.flatnonzero(np.diff(unique) != 1) + 1
    for run in np.split(unique, breaks):
        parts.append(dataset[int(run[0]):int(run[-1]) + 1])
    return np.concatenate(parts)[inverse]


def _set_info(name: str, group: h5py.Group, segments: list[SegmentInfo] | None) -> SetInfo:
    attrs = group.attrs
    if segments is not None:
        size = sum(s.bytes for s in segments)
    else:
        size = 0

        def visit(_: str, obj: object) -> None:
            nonlocal size
            if isinstance(obj, h5py.Dataset):
                size += obj.id.get_storage_size()

        group.visititems(visit)
    return SetInfo(name=name, embedder=str(attrs["embedder"]), plugin=str(attrs.get("plugin", "")),
                   config_hash=str(attrs["config_hash"]), config=json.loads(attrs["config"]),
                   outputs=json.loads(attrs["outputs"]), dtype=str(attrs["dtype"]), rows=int(attrs["rows"]),
                   bytes_on_disk=size, created=str(attrs.get("created", "")), updated=str(attrs.get("updated", "")))
