"""Durable progress of an extraction that has not been committed to the HDF5 file yet.

Computed rows go to ``FILE.h5.staging/`` as whole ``.npz`` shards, each renamed into place
only after it is on disk. A killed run leaves complete shards and nothing half-written; the
next run skips their keys and commits them with its own rows.
"""

from __future__ import annotations

import json
import shutil
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from embedx.store.durable import atomic_write

SHARD_SUFFIX = ".npz"


class Staging:
    def __init__(self, store_path: Path):
        self.root = Path(str(store_path) + ".staging")

    # feature sets -------------------------------------------------------
    def set_dir(self, name: str) -> Path:
        return self.root / "sets" / name

    def write_set_meta(self, name: str, meta: dict[str, Any]) -> None:
        directory = self.set_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write(directory / "meta.json", lambda tmp: tmp.write_text(json.dumps(meta)))

    def set_meta(self, name: str) -> dict[str, Any] | None:
        path = self.set_dir(name) / "meta.json"
        return json.loads(path.read_text()) if path.exists() else None

    def staged_sets(self) -> list[str]:
        base = self.root / "sets"
        if not base.is_dir():
            return []
        return sorted(d.name for d in base.iterdir() if (d / "meta.json").exists())

    def write_shard(self, name: str, arrays: dict[str, np.ndarray]) -> Path:
        directory = self.set_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"shard-{uuid.uuid4().hex}{SHARD_SUFFIX}"

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, **arrays)

        atomic_write(path, write)
        return path

    def shards(self, name: str) -> Iterator[tuple[Path, dict[str, np.ndarray]]]:
        """Each readable shard with its arrays; an unreadable one is deleted (it will be recomputed)."""
        directory = self.set_dir(name)
        if not directory.is_dir():
            return
        for path in sorted(directory.glob(f"shard-*{SHARD_SUFFIX}")):
            arrays = _read_or_drop(path)
            if arrays is not None:
                yield path, arrays

    def staged_keys(self, name: str) -> set[bytes]:
        keys: set[bytes] = set()
        for _, arrays in self.shards(name):
            keys.update(arrays["keys"].tolist())
        return keys

    # input tables -------------------------------------------------------
    def write_input(self, name: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        directory = self.root / "inputs"
        directory.mkdir(parents=True, exist_ok=True)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, __meta__=np.array(json.dumps(meta)), **arrays)

        atomic_write(directory / f"{name}{SHARD_SUFFIX}", write)

    def staged_inputs(self) -> Iterator[tuple[str, dict[str, Any], dict[str, np.ndarray]]]:
        directory = self.root / "inputs"
        if not directory.is_dir():
            return
        for path in sorted(directory.glob(f"*{SHARD_SUFFIX}")):
            arrays = _read_or_drop(path)
            if arrays is None:
                continue
            meta = json.loads(str(arrays.pop("__meta__")))
            yield path.name[: -len(SHARD_SUFFIX)], meta, arrays

    # housekeeping -------------------------------------------------------
    def is_empty(self) -> bool:
        return not self.root.exists() or not any(self.root.rglob(f"*{SHARD_SUFFIX}"))

    def remove_tmp_files(self) -> None:
        """Drop half-written files of a killed writer (only called while holding the writer lock)."""
        if self.root.exists():
            for tmp in self.root.rglob(".*.tmp-*"):
                tmp.unlink(missing_ok=True)

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def pending_rows(self) -> dict[str, int]:
        """Rows staged per set, for ``embedx info`` to report an unfinished run."""
        counts = {}
        for name in self.staged_sets():
            counts[name] = sum(len(a["keys"]) for _, a in self.shards(name))
        return counts


def _read_or_drop(path: Path) -> dict[str, np.ndarray] | None:
    """A shard's arrays, or ``None`` after deleting it if it cannot be read (its rows get recomputed)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        path.unlink(missing_ok=True)
        return None
