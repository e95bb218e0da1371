"""A head's trained state as plain data: numeric arrays in ``state.npz`` plus scalars in ``state.json``.

Saved heads travel between people, so loading one must never run code from it. Arrays are read
with ``allow_pickle=False`` (object arrays are refused) and the JSON holds only numbers, strings and
lists. Heads rebuild their scikit-learn or PyTorch objects from these values. Files an older embedx
wrote with pickle or ``torch.save`` are refused before anything in them is read.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from embedx.errors import StoreError

STATE_ARRAYS = "state.npz"
STATE_CONFIG = "state.json"
#: files of the pickle-based format (embedx before head format 2): loading them could run code
LEGACY_FILES = ("model.pkl", "model.pt")


class HeadStateError(StoreError):
    """A saved head that cannot be read back: old format, missing or damaged files, wrong shapes."""


def write_state(directory: Path, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> None:
    for name, value in arrays.items():
        if np.asarray(value).dtype.hasobject:
            raise TypeError(f"head state {name!r} holds Python objects; save numbers only")
    with open(directory / STATE_ARRAYS, "wb") as handle:
        np.savez(handle, **{k: np.asarray(v) for k, v in arrays.items()})
    (directory / STATE_CONFIG).write_text(json.dumps(config, indent=1))


def refuse_legacy(directory: Path, retrain: str) -> None:
    """Refuse a head folder holding the old pickle files, before opening any of them."""
    legacy = [name for name in LEGACY_FILES if (directory / name).exists()]
    if legacy and not (directory / STATE_ARRAYS).exists():
        raise HeadStateError(
            f"{directory / legacy[0]}: a head saved by an older embedx with pickle, which can run code when "
            f"loaded, so embedx does not open it. Re-save it in the data-only format by training again: "
            f"{retrain}")


def read_state(directory: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the config :func:`write_state` wrote; a clear error for anything else."""
    arrays_path, config_path = directory / STATE_ARRAYS, directory / STATE_CONFIG
    for path in (arrays_path, config_path):
        if not path.is_file():
            raise HeadStateError(f"{directory}: saved head lacks {path.name}; save it again with `embedx train --save`")
    try:
        with np.load(arrays_path, allow_pickle=False) as loaded:
            arrays = {name: loaded[name] for name in loaded.files}
    except ValueError as exc:  # object arrays need pickle: refused
        raise HeadStateError(f"{arrays_path}: not a data-only array file ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise HeadStateError(f"{arrays_path}: unreadable ({exc.__class__.__name__}: {exc})") from None
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise HeadStateError(f"{config_path}: unreadable JSON ({exc})") from None
    if not isinstance(config, dict):
        raise HeadStateError(f"{config_path}: expected a JSON object")
    return arrays, config


def need(arrays: dict[str, np.ndarray], directory: Path, *names: str) -> list[np.ndarray]:
    """The arrays called ``names``, or an error naming the first missing one."""
    missing = [n for n in names if n not in arrays]
    if missing:
        raise HeadStateError(f"{directory / STATE_ARRAYS}: no array {missing[0]!r}; save the head again")
    return [arrays[n] for n in names]
