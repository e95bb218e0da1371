"""A head's trained state as plain data: numeric arrays in ``state.npz`` plus scalars in ``state.json``.

Saved heads travel between people, so loading one must never run code from it, nor let it take
more memory than its arrays need. Arrays are read with ``allow_pickle=False`` (object arrays are
refused) after their sizes, dtypes and shapes are checked from the zip directory and the ``.npy``
headers (see :func:`read_state`), and the JSON holds only numbers, strings and lists. Heads
rebuild their scikit-learn or PyTorch objects from these values. Files an older embedx wrote
with pickle or ``torch.save`` are refused before anything in them is read.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedx.contract.errors import StoreError

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
        np.savez(handle, **{k: np.asarray(v) for k, v in arrays.items()})  # type: ignore[arg-type]  # numpy stubs: **kwds as allow_pickle
    (directory / STATE_CONFIG).write_text(json.dumps(config, indent=1))


def refuse_legacy(directory: Path, retrain: str) -> None:
    """Refuse a head folder holding the old pickle files, before opening any of them."""
    legacy = [name for name in LEGACY_FILES if (directory / name).exists()]
    if legacy and not (directory / STATE_ARRAYS).exists():
        raise HeadStateError(
            f"{directory / legacy[0]}: a head saved by an older embedx with pickle, which can run code when "
            f"loaded, so embedx does not open it. Re-save it in the data-only format by training again: "
            f"{retrain}")


#: A member of ``state.npz`` may declare at most this many bytes per byte it takes in the archive. embedx
#: writes members uncompressed (ratio 1); a compressed member of a real head stays far below this, a zip
#: bomb (2.9 MB inflating to 3 GB) far above. Members declaring under :data:`RATIO_FLOOR` are exempt.
EXPANSION_RATIO = 20
RATIO_FLOOR = 1 << 20
#: The most a saved head's arrays may declare in all, whatever the archive's size: 2 GiB, or
#: ``$EMBEDX_MAX_HEAD_MB`` megabytes.
MAX_STATE_BYTES = 2 << 30
MAX_STATE_ENV = "EMBEDX_MAX_HEAD_MB"
#: At most this many arrays, and a ``state.json`` of at most this many bytes.
MAX_MEMBERS = 4096
MAX_CONFIG_BYTES = 1 << 20


@dataclass(frozen=True)
class ArraySpec:
    """What one array of a head's state must be: its dtype kinds and its shape.

    ``kinds`` holds numpy kind letters (``"f"`` float, ``"iu"`` integer, ``"V"`` records). Each entry
    of ``shape`` is an int (that size exactly), a name (the same size wherever the name recurs in
    one head's specs, e.g. ``"d"`` for the feature dimension) or None (any size).
    """

    kinds: str
    shape: tuple[int | str | None, ...]


def floats(*shape: int | str | None) -> ArraySpec:
    return ArraySpec("f", shape)


def ints(*shape: int | str | None) -> ArraySpec:
    return ArraySpec("iu", shape)


def records(*shape: int | str | None) -> ArraySpec:
    return ArraySpec("V", shape)


def max_state_bytes() -> int:
    value = os.environ.get(MAX_STATE_ENV, "").strip()
    try:
        return int(value) << 20 if value else MAX_STATE_BYTES
    except ValueError:
        raise HeadStateError(f"${MAX_STATE_ENV}={value!r}: expected a whole number of megabytes") from None


def read_state(directory: Path, expect: Callable[[dict[str, Any]], dict[str, ArraySpec]] | None = None,
               ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the config :func:`write_state` wrote; a clear error for anything else.

    ``state.npz`` is checked before any array is read: every member's declared size against the
    archive (:data:`EXPANSION_RATIO`, :data:`MAX_STATE_BYTES`), its ``.npy`` header (no Python
    objects, a size that matches the declared one) and, with ``expect`` (called with the config),
    its dtype and shape against what the head needs. Each refusal is one line naming the member.
    """
    arrays_path, config_path = directory / STATE_ARRAYS, directory / STATE_CONFIG
    for path in (arrays_path, config_path):
        if not path.is_file():
            raise HeadStateError(f"{directory}: saved head lacks {path.name}; save it again with `embedx train --save`")
    config = _read_config(config_path)
    specs = expect(config) if expect is not None else None
    return _read_arrays(arrays_path, specs), config


def _read_config(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise HeadStateError(f"{path}: {path.stat().st_size:,} bytes, more than a head's settings take "
                                 f"({MAX_CONFIG_BYTES:,}); not a saved head's state")
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise HeadStateError(f"{path}: unreadable JSON ({str(exc)[:200]})") from None
    if not isinstance(config, dict):
        raise HeadStateError(f"{path}: expected a JSON object")
    return config


def _read_arrays(path: Path, specs: dict[str, ArraySpec] | None) -> dict[str, np.ndarray]:
    def refuse(why: str) -> HeadStateError:
        return HeadStateError(f"{path}: {why}; save the head again")

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise refuse(f"{len(members):,} members, more than a head has ({MAX_MEMBERS:,})")
            declared = sum(m.file_size for m in members)
            cap = max_state_bytes()
            if declared > cap:
                raise refuse(f"its arrays declare {declared:,} bytes in all, more than the {cap:,} a saved head may "
                             f"hold (${MAX_STATE_ENV} raises it)")
            headers: dict[str, tuple[np.dtype, tuple[int, ...], zipfile.ZipInfo]] = {}
            for member in members:
                name = _member_name(member, refuse)
                if member.file_size > max(RATIO_FLOOR, EXPANSION_RATIO * member.compress_size):
                    raise refuse(f"member {name!r} declares {member.file_size:,} bytes from {member.compress_size:,} "
                                 f"compressed, more than {EXPANSION_RATIO}x (a zip bomb, or not a head)")
                if name in headers:
                    raise refuse(f"member {name!r} appears twice")
                with archive.open(member) as handle:
                    dtype, shape = _header(handle, name, refuse)
                    header_bytes = handle.tell()
                if dtype.hasobject:
                    raise HeadStateError(f"{path}: not a data-only array file (member {name!r} holds Python objects, "
                                         "which only pickle can read)")
                if header_bytes + math.prod(shape) * dtype.itemsize != member.file_size:
                    raise refuse(f"member {name!r}: its header says {shape} of {dtype}, which does not match its "
                                 f"{member.file_size:,} bytes")
                headers[name] = (dtype, shape, member)
            if specs is not None:
                _check_specs(headers, specs, refuse)
            arrays = {}
            for name, (_, _, member) in headers.items():
                with archive.open(member) as handle:
                    arrays[name] = np.lib.format.read_array(handle, allow_pickle=False)
            return arrays
    except HeadStateError:
        raise
    except zipfile.BadZipFile as exc:
        raise HeadStateError(f"{path}: not a data-only array file (not a readable zip archive: {exc})") from None
    # zipfile raises NotImplementedError for a compression method it lacks, RuntimeError for encryption
    except (OSError, EOFError, ValueError, KeyError, NotImplementedError, RuntimeError) as exc:
        raise HeadStateError(f"{path}: unreadable ({exc.__class__.__name__}: {str(exc)[:200]})") from None


def _member_name(member: zipfile.ZipInfo, refuse: Callable[[str], HeadStateError]) -> str:
    name = member.filename
    if not name.endswith(".npy") or "/" in name or "\\" in name or member.is_dir():
        raise refuse(f"member {name[:100]!r} is not a .npy array")
    return name[:-4]


def _header(handle: Any, name: str, refuse: Callable[[str], HeadStateError]) -> tuple[np.dtype, tuple[int, ...]]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(handle)
        else:
            raise ValueError(f".npy format {version[0]}.{version[1]}")
    except (ValueError, EOFError, SyntaxError, TypeError) as exc:
        raise refuse(f"member {name!r} has no readable .npy header ({str(exc)[:120]})") from None
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise refuse(f"member {name!r} has shape {shape}")
    return np.dtype(dtype), tuple(shape)


def _check_specs(headers: dict[str, tuple[np.dtype, tuple[int, ...], Any]], specs: dict[str, ArraySpec],
                 refuse: Callable[[str], HeadStateError]) -> None:
    for name in specs:
        if name not in headers:
            raise refuse(f"no array {name!r}")
    for name in headers:
        if name not in specs:
            raise refuse(f"member {name!r} is not part of this kind of head")
    bound: dict[str, int] = {}
    for name, spec in specs.items():
        dtype, shape, _ = headers[name]
        wanted = "x".join("?" if w is None else str(w) for w in spec.shape) or "a scalar"
        if dtype.kind not in spec.kinds:
            kinds = {"f": "float", "i": "integer", "u": "integer", "V": "record", "b": "bool"}
            expected = " or ".join(dict.fromkeys(kinds.get(k, k) for k in spec.kinds))
            raise refuse(f"member {name!r} is {dtype}, expected {expected}")
        if len(shape) != len(spec.shape):
            raise refuse(f"member {name!r} has shape {shape}, expected {wanted}")
        for got, want in zip(shape, spec.shape, strict=True):
            if want is None:
                continue
            if isinstance(want, str):
                if bound.setdefault(want, got) != got:
                    raise refuse(f"member {name!r} has shape {shape}, expected {wanted} with {want}={bound[want]} "
                                 "as in the other arrays")
            elif got != want:
                raise refuse(f"member {name!r} has shape {shape}, expected {wanted}")


def check_classes(classes: np.ndarray, n_classes: int, directory: Path) -> None:
    """A fitted estimator's ``classes_``: distinct, ascending label ids below ``n_classes``."""
    if classes.ndim != 1 or not 1 <= len(classes) <= n_classes or (len(classes) and (
            classes.min() < 0 or classes.max() >= n_classes or np.any(np.diff(classes) <= 0))):
        raise HeadStateError(f"{directory / STATE_ARRAYS}: member 'classes' is not {n_classes} or fewer distinct "
                             "ascending class ids; save the head again")


def config_int(config: dict[str, Any], key: str, directory: Path, low: int = 0, high: int | None = None) -> int:
    """A whole number from a head's ``state.json``, in ``[low, high]``; one line naming it otherwise."""
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f"{low} or more"
        raise HeadStateError(f"{directory / STATE_CONFIG}: {key!r} is {str(value)[:40]!r}, expected a whole number "
                             f"{bound}; save the head again")
    return value


def need(arrays: dict[str, np.ndarray], directory: Path, *names: str) -> list[np.ndarray]:
    """The arrays called ``names``, or an error naming the first missing one."""
    missing = [n for n in names if n not in arrays]
    if missing:
        raise HeadStateError(f"{directory / STATE_ARRAYS}: no array {missing[0]!r}; save the head again")
    return [arrays[n] for n in names]
