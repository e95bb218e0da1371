"""Names and constants of the HDF5 layout; docs/hdf5-format.md describes it for h5py users."""

from __future__ import annotations

import re

FORMAT_NAME = "embedx-features"
FORMAT_VERSION = 1

SETS = "sets"
INPUTS = "inputs"

KEYS = "keys"  # S32: content key of each row (hex BLAKE2b-128 of the UTF-8 text)
TRUNCATED = "truncated"  # int32: tokens the embedder cut from each row (0 = none)
VALUES = "values"
OFFSETS = "offsets"  # int64 [rows + 1]: token rows of row i are values[offsets[i]:offsets[i+1]]
TOKENS = "tokens"
COLUMNS = "columns"
TEXT = "text"
EMPTY = "empty"
LINE = "line"

KEY_DTYPE = "S32"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.@+-]+")


def safe_name(name: str) -> str:
    """A group name HDF5 and shells both accept: no '/', no spaces, never '.' alone."""
    cleaned = _UNSAFE.sub("_", name).strip("._") or "unnamed"
    return cleaned[:100]


def set_name(embedder_id: str, config_hash: str) -> str:
    """Group name of a feature set: the readable id plus the configuration hash that binds it."""
    return f"{safe_name(embedder_id)}--{config_hash[:12]}"


def chunk_rows(row_bytes: int, target_bytes: int = 1 << 18) -> int:
    """Rows per chunk so one chunk is about ``target_bytes`` (small enough for random reads)."""
    return max(16, min(8192, target_bytes // max(row_bytes, 1)))
