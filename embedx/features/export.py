"""Write one feature set's document vectors, in input order, to .npy, .npz, .parquet or .csv.

``.npz`` holds the vectors as ``X`` next to the input table's columns (labels, a split column), its
line numbers and content keys, all as plain arrays that ``np.load(..., allow_pickle=False)`` reads.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from embedx.contract.errors import EmbedxError, OptionError, StoreError
from embedx.store.reader import FeatureStore

FORMATS = (".npy", ".npz", ".parquet", ".csv")


def export(store_path: str | Path, embedder: str, out: str | Path, *, config_hash: str | None = None,
           input: str | None = None, output: str | None = None, chunk_size: int = 8192,
           allow_nonfinite: bool = False) -> int:
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
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}{suffix}")  # renamed over ``out`` when complete
    try:
        rows = _export(store_path, embedder, partial, suffix, config_hash, input, output, chunk_size, allow_nonfinite)
        os.replace(partial, out)
    except OSError as exc:
        raise EmbedxError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return rows


def _finite(chunks, name: str, lines: np.ndarray):
    """Pass chunks through, stopping at the first that holds NaN or infinity."""
    start = 0
    for chunk in chunks:
        finite = np.isfinite(chunk.reshape(len(chunk), -1)).all(axis=1)
        if not finite.all():
            first = start + int(np.argmin(finite))
            raise StoreError(f"set {name} holds NaN or infinite values (first at input line {lines[first]}); "
                             "refusing to export them. `embedx check` lists them; re-extract the set, or pass "
                             "--allow-nonfinite to export them as they are")
        yield chunk
        start += len(chunk)


def _export(store_path, embedder, out: Path, suffix: str, config_hash, input, output, chunk_size,
            allow_nonfinite: bool) -> int:
    with FeatureStore(store_path) as store:
        fset = store.feature_set(embedder, config_hash)
        table = store.input(input)
        keys = table.keys
        spec = fset.output_spec(output, "document")
        dim = spec["dim"] * (spec["layers"] if spec.get("per_layer") else 1)
        chunks = fset.iter_vectors(keys=keys, output=spec["name"], chunk_size=chunk_size)
        columns = {"line": table.lines} | {name: table.column(name) for name in table.columns}
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
            _npz(out, chunks, columns, keys, len(keys), np.dtype(fset.info.dtype), _inner(spec))
        elif suffix == ".csv":
            with open(out, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow([*columns, *(f"f{i}" for i in range(dim))])
                start = 0
                for chunk in chunks:
                    flat = chunk.reshape(len(chunk), -1)
                    for i, row in enumerate(flat):
                        writer.writerow([*(columns[c][start + i] for c in columns), *(f"{v:.7g}" for v in row)])
                    start += len(chunk)
        else:
            _parquet(out, chunks, columns, dim)
    return len(keys)


def _npz(out: Path, chunks, columns: dict[str, np.ndarray], keys: np.ndarray, n: int, dtype: np.dtype,
         inner: tuple[int, ...]) -> None:
    X = np.empty((n, *inner), dtype=dtype)
    start = 0
    for chunk in chunks:
        X[start:start + len(chunk)] = chunk
        start += len(chunk)
    plain = {name: np.asarray(values).astype(str) if np.asarray(values).dtype.kind == "O" else np.asarray(values)
             for name, values in columns.items()}
    plain["key"] = np.array([k.decode() if isinstance(k, bytes) else str(k) for k in keys.tolist()])
    with open(out, "wb") as handle:
        np.savez(handle, X=X, **{name: v for name, v in plain.items() if name != "X"})  # type: ignore[arg-type]  # numpy stubs: **kwds as allow_pickle


def _inner(spec: dict) -> tuple[int, ...]:
    return ((spec["layers"],) if spec.get("per_layer") else ()) + (spec["dim"],)


def _parquet(out: Path, chunks, columns: dict[str, np.ndarray], dim: int) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise EmbedxError("parquet export needs pyarrow: pip install pyarrow") from None
    writer, start = None, 0
    try:
        for chunk in chunks:
            flat = np.ascontiguousarray(chunk.reshape(len(chunk), -1))
            arrays = {c: pa.array(v[start:start + len(chunk)].tolist()) for c, v in columns.items()}
            arrays["vector"] = pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), dim)
            batch = pa.table(arrays)
            if writer is None:
                writer = pq.ParquetWriter(out, batch.schema)
            writer.write_table(batch)
            start += len(chunk)
    finally:
        if writer is not None:
            writer.close()
