"""``embedx check FILE``: verify a feature file's structure, then read every byte of it.

Opening a file already refuses links out of it, foreign virtual data, bad dtypes and shapes
(:mod:`embedx.store.verify`). This adds what needs a full read: every dataset is read in
bounded chunks (so damage anywhere shows), feature values are scanned for NaN and infinity,
token offsets must never decrease, keys must be 32 hex digits and unique within a set. For a
segment store, every segment the index lists is checked against the index (its attributes say
the same rows) and each set segment's key index against its stored keys (``index/rows`` is a
permutation, ``index/keys`` strictly sorted and equal to the keys at those rows), so a lookup
can never serve one text's features for another.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from embedx.contract.errors import StoreError
from embedx.store import layout as L

CHUNK_BYTES = 32 << 20
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


@dataclass
class CheckReport:
    """What ``check_file`` found: ``problems`` is empty for a sound file."""

    path: str
    problems: list[str] = field(default_factory=list)
    datasets: int = 0
    bytes_read: int = 0
    values_scanned: int = 0
    nonfinite: dict[str, int] = field(default_factory=dict)
    sets: int = 0
    inputs: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "ok": self.ok, "problems": self.problems, "datasets": self.datasets,
                "bytes_read": self.bytes_read, "values_scanned": self.values_scanned,
                "nonfinite": self.nonfinite, "sets": self.sets, "inputs": self.inputs}


def check_file(path: str | Path) -> CheckReport:
    """Verify and fully read ``path``; problems are collected, never raised."""
    from embedx.store.open import open_checked

    report = CheckReport(str(path))
    try:
        handle = open_checked(path)
    except StoreError as exc:
        report.problems.append(str(exc))
        return report
    with handle:
        report.sets = len(handle[L.SETS])
        report.inputs = len(handle[L.INPUTS])
        datasets: list[tuple[str, h5py.Dataset]] = []
        handle.visititems(lambda name, obj: datasets.append((name, obj)) if isinstance(obj, h5py.Dataset) else None)
        for name, ds in datasets:
            report.datasets += 1
            _read_dataset(name, ds, report)
        if L.SEGMENTS in handle:
            _check_segments(handle, Path(path), report)
    return report


def _check_segments(handle: h5py.File, path: Path, report: CheckReport) -> None:
    """Each listed segment agrees with the index, and each set segment's key index with its keys."""
    from embedx.store.segment import SET, read_info, read_segment_list, verify_key_index

    try:
        infos = read_segment_list(handle, path)
    except StoreError as exc:
        report.problems.append(str(exc))
        return
    real = Path(os.path.realpath(path))
    folder = L.segment_dir(real)
    for listed in infos:
        segment = folder / listed.file
        try:
            found, _ = read_info(segment)
            said = [(k, getattr(listed, k), getattr(found, k)) for k in ("kind", "name", "lo", "hi", "rows", "part")]
            wrong = [f"{k} {a!r} / {b!r}" for k, a, b in said if a != b]
            if listed.kind == SET and listed.tokens != found.tokens:
                wrong.append("token counts")
            if wrong:
                report.problems.append(f"segment {segment}: the index and the segment disagree on {', '.join(wrong)} "
                                       "(index / segment); the file is damaged")
                continue
            if listed.kind == SET:
                verify_key_index(segment, listed.rows)
        except StoreError as exc:
            report.problems.append(str(exc))
        except (OSError, KeyError, TypeError, ValueError) as exc:
            report.problems.append(f"segment {segment} cannot be checked ({_short(exc)})")


def _read_dataset(name: str, ds: h5py.Dataset, report: CheckReport) -> None:
    role = name.rsplit("/", 1)[-1]
    in_set = name.startswith(f"{L.SETS}/")
    if ds.shape == ():
        try:
            ds[()]
        except (OSError, ValueError) as exc:
            report.problems.append(f"dataset /{name} cannot be read ({_short(exc)})")
        return
    row_bytes = max(1, ds.dtype.itemsize * int(np.prod(ds.shape[1:], dtype=np.int64)))
    step = max(1, CHUNK_BYTES // row_bytes)
    previous_last = None
    binary_keys: list[np.ndarray] = []  # 16 bytes per key, so a duplicate check over 10M keys needs 160 MB
    bad = 0
    for start in range(0, ds.shape[0], step):
        try:
            block = ds[start:start + step]
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            report.problems.append(f"dataset /{name} cannot be read at rows {start:,}..{start + step:,} "
                                   f"({_short(exc)})")
            return
        report.bytes_read += block.nbytes if block.dtype.kind != "O" else sum(len(x) for x in block)
        if in_set and role == L.VALUES and block.dtype.kind == "f":
            report.values_scanned += block.size
            bad += int(block.size - np.count_nonzero(np.isfinite(block)))
        elif in_set and role == L.OFFSETS:
            if len(block) and ((previous_last is not None and block[0] < previous_last) or np.any(np.diff(block) < 0)):
                report.problems.append(f"dataset /{name}: token offsets decrease, so rows would overlap")
                return
            previous_last = block[-1] if len(block) else previous_last
        elif in_set and role == L.KEYS and block.dtype == np.dtype(L.KEY_DTYPE):
            raw = np.frombuffer(block.tobytes(), dtype=np.uint8).reshape(len(block), 32)
            nibbles = np.searchsorted(_HEX, raw)
            if not np.array_equal(_HEX[np.minimum(nibbles, 15)], raw):
                report.problems.append(f"dataset /{name}: a content key is not 32 lowercase hex digits")
                return
            binary_keys.append((nibbles[:, 0::2] * 16 + nibbles[:, 1::2]).astype(np.uint8))
    if binary_keys:
        flat = np.ascontiguousarray(np.concatenate(binary_keys)).view("V16").ravel()
        if len(np.unique(flat)) != len(flat):
            report.problems.append(f"dataset /{name}: the same content key appears twice")
    if bad:
        report.nonfinite[f"/{name}"] = bad
        report.problems.append(f"dataset /{name} holds {bad:,} NaN or infinite values")


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
