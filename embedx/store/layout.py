"""Names and constants of the HDF5 layout; docs/hdf5-format.md describes it for h5py users."""

from __future__ import annotations

import re
from pathlib import Path

FORMAT_NAME = "embedx-features"
FORMAT_VERSION = 2  # 2: the file is an index of virtual datasets over immutable segment files
SEGMENT_FORMAT = "embedx-segment"
SEGMENTS = "segments"  # root dataset of the index: one JSON line per segment it maps
SEGMENT_DIR_SUFFIX = ".segments"  # FILE.h5.segments/ holds the segment files of FILE.h5
QUARANTINE_SUFFIX = ".quarantine"  # FILE.h5.quarantine/ holds what could not be committed

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
RAW = "raw"  # input pieces: column values as text, typed when the whole input has been seen
SORTED_KEYS = "index/keys"  # uint8 [rows, 16]: the binary keys of a set segment, sorted
SORTED_ROWS = "index/rows"  # uint32 [rows]: the segment row of each sorted key

_UNSAFE = re.compile(r"[^A-Za-z0-9_.@+-]+")


def safe_name(name: str) -> str:
    """A group name HDF5 and shells both accept: no '/', no spaces, never '.' alone."""
    cleaned = _UNSAFE.sub("_", name).strip("._") or "unnamed"
    return cleaned[:100]


def segment_dir(path: Path) -> Path:
    """The folder of ``path``'s segment files, beside it."""
    return path.with_name(path.name + SEGMENT_DIR_SUFFIX)


def quarantine_dir(path: Path) -> Path:
    return path.with_name(path.name + QUARANTINE_SUFFIX)


def set_name(embedder_id: str, config_hash: str) -> str:
    """Group name of a feature set: the readable id plus the configuration hash that binds it."""
    return f"{safe_name(embedder_id)}--{config_hash[:12]}"


def chunk_rows(row_bytes: int, target_bytes: int = 1 << 18) -> int:
    """Rows per chunk so one chunk is about ``target_bytes`` (small enough for random reads)."""
    return max(16, min(8192, target_bytes // max(row_bytes, 1)))
