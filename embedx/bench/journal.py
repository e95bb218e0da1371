"""A comparison's finished units, appended as they complete, so an hours-long ``--full`` run resumes.

The features are already resumable (the content-keyed cache); this covers the rest: each head fit
per seed, each fine-tuning run, each layer-sweep row. A unit's key holds every setting that changes
its result (dataset, the features' set name, which carries the embedder's whole configuration and its
model-file digests, head, seed, the protocol and sizes, the embedx version; for fine-tuning, digests of
the files and folders its options name), so a changed setting or a model retrained in place recomputes
only the units it touches. Lines are fsynced one by one; a line cut short by a
crash is ignored, never trusted. The file holds JSON only: nothing in it can run code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

#: the config fields every unit's result depends on (the lists of datasets, embedders, heads and
#: seeds are not here: each unit names its own dataset, features, head and seed)
SHARED_SETTINGS = ("samples_per_class", "finetune_samples_per_class", "max_tokens", "max_token_length",
                   "selection", "folds")

#: what a unit adds to the results, replayed on resume
PARTS = ("rows", "curves", "layers")


class Journal:
    def __init__(self, path: Path, config: dict[str, Any], enabled: bool = True):
        from embedx import __version__

        self.path, self.enabled = Path(path), enabled
        self.shared = {"embedx": __version__, **{k: config.get(k) for k in SHARED_SETTINGS}}
        self.done: dict[str, dict[str, Any]] = self._load() if enabled else {}
        self.reused = 0

    def key(self, *unit: Any) -> str:
        text = json.dumps([self.shared, *unit], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self.done.get(key)
        if entry is not None:
            self.reused += 1
        return entry

    def add(self, key: str, entry: dict[str, Any]) -> None:
        if not self.enabled:
            return
        line = json.dumps({"key": key, **entry}, default=plain_json)
        with open(self.path, "a", encoding="utf-8") as fh:
            if fh.tell() and not _ends_with_newline(self.path):
                fh.write("\n")  # close a line a crash cut short, so this one is not glued onto it
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.done[key] = entry

    def _load(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        done: dict[str, dict[str, Any]] = {}
        with open(self.path, "rb") as fh:
            for raw in fh:
                try:
                    entry = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    continue  # a line cut short by a crash (or damaged): that unit runs again
                if isinstance(entry, dict) and isinstance(entry.get("key"), str) and _well_formed(entry):
                    done[entry.pop("key")] = entry
        return done


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _well_formed(entry: dict[str, Any]) -> bool:
    return all(isinstance(entry.get(part, []), list) for part in PARTS) and isinstance(entry.get("families", {}), dict)


def plain_json(value: Any) -> Any:
    """numpy scalars and arrays as JSON values (anything else as its string): for ``json.dumps(default=...)``."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
