"""Write one feature set's vectors, in input order (duplicates repeated), to .npy, .npz, .parquet or .csv.

Every row carries its input line, the input table's columns (labels, a split column) and its content
key; .npz has ``meta`` and .parquet's schema metadata ``embedx``: the set's full configuration as JSON.
Document vectors in .csv and .parquet go in columns ``f0..fN`` (``layout="wide"``, the default of both:
every table reader takes plain numeric columns) or in one list column ``vector`` (``layout="list"``, a
JSON array in CSV). Token outputs go to .npz (``values`` of all rows' tokens concatenated, ``offsets``:
row ``i`` is ``values[offsets[i]:offsets[i+1]]``, ``tokens``) or .parquet (per row, ``tokens`` and
``vector``: a list of token vectors). Everything is plain arrays that ``np.load(..., allow_pickle=False)``
reads.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from embedx.contract.errors import EmbedxError, OptionError, StoreError
from embedx.store.reader import FeatureStore

FORMATS = (".npy", ".npz", ".parquet", ".csv")
LAYOUTS = ("wide", "list")


def export(store_path: str | Path, embedder: str, out: str | Path, *, config_hash: str | None = None,
           input: str | None = None, output: str | None = None, chunk_size: int = 8192,
           allow_nonfinite: bool = False, layout: str | None = None) -> int:
    """Export and return the number of rows written; reads in chunks, so memory stays flat.

    Stored NaN or infinity stops the export (and removes the partial output) unless
    ``allow_nonfinite``: a feature file is untrusted, and such values poison any model silently.
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise OptionError(f"--output {out}: choose a .npy, .npz, .parquet or .csv file name")
    if not out.parent.is_dir():
        raise OptionError(f"--output {out}: the folder {out.parent} does not exist; create it first")
    if out.is_dir():
        raise OptionError(f"--output {out} is a folder; give a file name")
    if layout not in (None, *LAYOUTS):
        raise OptionError(f"--layout {layout}: choose wide (columns f0..fN) or list (one vector column)")
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}{suffix}")  # renamed over ``out`` when complete
    try:
        rows = _export(store_path, embedder, partial, suffix, config_hash, input, output, chunk_size, allow_nonfinite,
                       layout or "wide")
        os.replace(partial, out)
    except OSError as exc:
        raise EmbedxError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return rows


def _finite(chunks, name: str, lines: np.ndarray, rows_of=len):
    """Pass chunks through, stopping at the first that holds NaN or infinity."""
    start = 0
    for chunk in chunks:
        finite = _finite_rows(chunk)
        if not finite.all():
            first = start + int(np.argmin(finite))
            raise StoreError(f"set {name} holds NaN or infinite values (first at input line {lines[first]}); "
                             "refusing to export them. `embedx check` lists them; re-extract the set, or pass "
                             "--allow-nonfinite to export them as they are")
        yield chunk
        start += rows_of(chunk)


def _finite_rows(chunk) -> np.ndarray:
    if isinstance(chunk, list):  # token output: one array per row
        return np.array([bool(np.isfinite(v).all()) for v in chunk], dtype=bool)
    return np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)


def provenance(fset, spec: dict[str, Any], table, layout: str) -> dict[str, Any]:
    """What a reader of an exported file needs to know where its vectors came from."""
    from embedx import __version__

    info = fset.info
    return {"set": info.name, "embedder": info.embedder, "plugin": info.plugin, "config_hash": info.config_hash,
            "config": info.config, "output": spec, "dtype": info.dtype, "input": table.name, "rows": len(table),
            "layout": layout, "store": str(fset.store.path.name), "embedx_version": __version__}


def _export(store_path, embedder, out: Path, suffix: str, config_hash, input, output, chunk_size,
            allow_nonfinite: bool, layout: str) -> int:
    with FeatureStore(store_path) as store:
        fset = store.feature_set(embedder, config_hash)
        table = store.input(input)
        keys = table.keys
        columns = {"line": table.lines} | {name: table.column(name) for name in table.columns}
        level = fset.outputs[output]["level"] if output in fset.outputs else "document"
        if output is None and not any(o["level"] == "document" for o in fset.info.outputs):
            level = "token"
        spec = fset.output_spec(output, level)
        meta = provenance(fset, spec, table, layout)
        _check_names(table.columns, suffix, level, layout, spec)
        if level == "token":
            if suffix not in (".npz", ".parquet"):
                raise OptionError(f"output {spec['name']!r} is token-level: export it to .npz (values, offsets, "
                                  "keys, tokens) or .parquet (a list of token vectors per row)")
            _export_tokens(store_path, fset, spec, table.name, out, suffix, columns, keys, meta, chunk_size,
                           allow_nonfinite)
            return len(keys)
        dim = spec["dim"] * (spec["layers"] if spec.get("per_layer") else 1)
        chunks = fset.iter_vectors(keys=keys, output=spec["name"], chunk_size=chunk_size)
        if not allow_nonfinite:
            chunks = _finite(chunks, fset.info.name, table.lines)
        if suffix == ".npy":
            target = np.lib.format.open_memmap(out, mode="w+", dtype=np.dtype(fset.info.dtype),
                                               shape=(len(keys), *_inner(spec)))
            start = 0
            for chunk in chunks:
                target[start:start + len(chunk)] = chunk
                start += len(chunk)
            target.flush()
            del target
        elif suffix == ".npz":
            _npz(out, chunks, columns, keys, len(keys), np.dtype(fset.info.dtype), _inner(spec), meta)
        else:  # .csv and .parquet rows carry their key
            keyed = columns | {"key": _hex(keys)}
            if suffix == ".csv":
                _csv(out, chunks, keyed, dim, layout)
            else:
                _parquet(out, chunks, keyed, dim, meta, layout)
    return len(keys)


def _check_names(names: list[str], suffix: str, level: str, layout: str, spec: dict[str, Any]) -> None:
    """An input column named like a field the export adds would be overwritten: refuse it by name."""
    taken = {"line", "key", "meta"} | ({"X"} if level == "document" else {"values", "offsets", "tokens"})
    if suffix in (".csv", ".parquet") and level == "document":
        dim = spec["dim"] * (spec["layers"] if spec.get("per_layer") else 1)
        taken |= {f"f{i}" for i in range(dim)} if layout == "wide" else {"vector"}
    elif level == "token":
        taken.add("vector")
    clash = sorted(taken & set(names))
    if clash and suffix != ".npy":
        raise OptionError(f"input column {clash[0]!r} has the name export gives to its own field; rename the "
                          "column in the input file and extract it again")


def _hex(keys: np.ndarray) -> np.ndarray:
    return np.array([k.decode() if isinstance(k, bytes) else str(k) for k in keys.tolist()])


def _plain(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: np.asarray(values).astype(str) if np.asarray(values).dtype.kind == "O" else np.asarray(values)
            for name, values in columns.items()}


def _csv(out: Path, chunks, columns: dict[str, np.ndarray], dim: int, layout: str) -> None:
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*columns, *((f"f{i}" for i in range(dim)) if layout == "wide" else ["vector"])])
        start = 0
        for chunk in chunks:
            flat = chunk.reshape(len(chunk), -1)
            for i, row in enumerate(flat):
                values = [f"{v:.7g}" for v in row]
                writer.writerow([*(columns[c][start + i] for c in columns),
                                 *(values if layout == "wide" else ["[" + ", ".join(values) + "]"])])
            start += len(chunk)


def _npz(out: Path, chunks, columns: dict[str, np.ndarray], keys: np.ndarray, n: int, dtype: np.dtype,
         inner: tuple[int, ...], meta: dict[str, Any]) -> None:
    X = np.empty((n, *inner), dtype=dtype)
    start = 0
    for chunk in chunks:
        X[start:start + len(chunk)] = chunk
        start += len(chunk)
    plain = _plain(columns)
    plain["key"] = _hex(keys)
    plain["meta"] = np.array(json.dumps(meta))
    with open(out, "wb") as handle:
        np.savez(handle, X=X, **{name: v for name, v in plain.items() if name != "X"})  # type: ignore[arg-type]  # numpy stubs: **kwds as allow_pickle


def _inner(spec: dict) -> tuple[int, ...]:
    return ((spec["layers"],) if spec.get("per_layer") else ()) + (spec["dim"],)


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise EmbedxError("parquet export needs pyarrow: pip install pyarrow") from None
    return pa, pq


def _parquet(out: Path, chunks, columns: dict[str, np.ndarray], dim: int, meta: dict[str, Any], layout: str) -> None:
    pa, pq = _pyarrow()
    writer, start = None, 0
    try:
        for chunk in chunks:
            flat = np.ascontiguousarray(chunk.reshape(len(chunk), -1))
            arrays = {c: pa.array(v[start:start + len(chunk)].tolist()) for c, v in columns.items()}
            if layout == "wide":
                arrays |= {f"f{i}": pa.array(flat[:, i]) for i in range(dim)}
            else:
                arrays["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), dim)
            batch = pa.table(arrays).replace_schema_metadata({"embedx": json.dumps(meta)})
            if writer is None:
                writer = pq.ParquetWriter(out, batch.schema)
            writer.write_table(batch)
            start += len(chunk)
    finally:
        if writer is not None:
            writer.close()


def _export_tokens(store_path, fset, spec: dict[str, Any], input: str, out: Path, suffix: str,
                   columns: dict[str, np.ndarray], keys: np.ndarray, meta: dict[str, Any], chunk_size: int,
                   allow_nonfinite: bool) -> None:
    """A token output in input order: read in chunks of rows through their offsets, never all at once."""
    from embedx.features.tokens import TokenRows

    rows = TokenRows(store_path, fset.info.name, input=input, output=spec["name"])

    def read():
        lines = columns["line"]
        for start in range(0, len(rows), chunk_size):
            index = np.arange(start, min(start + chunk_size, len(rows)))
            values = rows.values(index, cast=False)
            if not allow_nonfinite:
                next(_finite([values], fset.info.name, lines[start:]))
            yield values, rows.tokens(index)

    if suffix == ".npz":
        words = (rows.tokens(np.arange(s, min(s + chunk_size, len(rows)))) for s in range(0, len(rows), chunk_size))
        width = max((len(t) for chunk in words for row in chunk for t in row), default=1)
        _npz_tokens(out, read(), rows.lengths, width, columns, keys, np.dtype(fset.info.dtype), _inner(spec), meta)
    else:
        _parquet_tokens(out, read(), columns | {"key": _hex(keys)}, int(np.prod(_inner(spec))), meta)


def _npz_tokens(out: Path, chunks, lengths: np.ndarray, width: int, columns: dict[str, np.ndarray],
                keys: np.ndarray, dtype: np.dtype, inner: tuple[int, ...], meta: dict[str, Any]) -> None:
    """Values and token strings go to scratch files on disk first, so memory stays flat; np.savez streams them."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    scratch = [out.with_name(f"{out.name}.{part}.npy") for part in ("values", "tokens")]
    try:
        values = np.lib.format.open_memmap(scratch[0], mode="w+", dtype=dtype, shape=(total, *inner))
        tokens = np.lib.format.open_memmap(scratch[1], mode="w+", dtype=f"<U{max(width, 1)}", shape=(total,))
        at = 0
        for pieces, words in chunks:
            for piece, row_words in zip(pieces, words, strict=True):
                values[at:at + len(piece)] = piece
                tokens[at:at + len(piece)] = row_words
                at += len(piece)
        plain: dict[str, np.ndarray] = _plain(columns)
        plain["key"] = _hex(keys)
        plain["meta"] = np.array(json.dumps(meta))
        with open(out, "wb") as handle:
            plain |= {"values": values, "offsets": offsets, "tokens": tokens}
            np.savez(handle, **plain)  # type: ignore[arg-type]  # numpy stubs: **kwds as allow_pickle
        del values, tokens
    finally:
        for path in scratch:
            path.unlink(missing_ok=True)


def _parquet_tokens(out: Path, chunks, columns: dict[str, np.ndarray], width: int, meta: dict[str, Any]) -> None:
    pa, pq = _pyarrow()
    writer, start = None, 0
    try:
        for pieces, words in chunks:
            n = len(pieces)
            arrays = {c: pa.array(v[start:start + n].tolist()) for c, v in columns.items()}
            arrays["tokens"] = pa.array(words, type=pa.list_(pa.string()))
            flat = np.concatenate([p.reshape(-1) for p in pieces]) if n else np.zeros(0, np.float32)
            per_token = pa.FixedSizeListArray.from_arrays(pa.array(flat), width)
            counts = np.zeros(n + 1, dtype=np.int32)
            np.cumsum([len(p) for p in pieces], out=counts[1:])
            arrays["vector"] = pa.ListArray.from_arrays(pa.array(counts), per_token)
            batch = pa.table(arrays).replace_schema_metadata({"embedx": json.dumps(meta)})
            if writer is None:
                writer = pq.ParquetWriter(out, batch.schema)
            writer.write_table(batch)
            start += n
    finally:
        if writer is not None:
            writer.close()
