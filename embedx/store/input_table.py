"""An input file's rows as arrays for staging: keys in input order, text, flags, typed columns."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from embedx.inputs import Record
from embedx.store import layout as L
from embedx.store.packing import pack_strings


def input_table_arrays(records: list[Record], keys: list[bytes], columns: list[str], source: str,
                       store_text: bool) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    arrays: dict[str, np.ndarray] = {
        "keys": np.array(keys, dtype=L.KEY_DTYPE),
        "empty": np.array([not r.text.strip() for r in records], dtype=bool),
        "line": np.array([r.line for r in records], dtype=np.int64),
    }
    if store_text:
        arrays["text.bytes"], arrays["text.offsets"] = pack_strings([r.text for r in records])
    for column in columns:
        values = [r.columns.get(column) for r in records]
        typed = typed_column(values)
        if typed is None:
            arrays[f"col:{column}.bytes"], arrays[f"col:{column}.offsets"] = pack_strings(
                ["" if v is None else str(v) for v in values])
        else:
            arrays[f"col:{column}"] = typed
    meta = {"source": source, "columns": columns, "text_stored": store_text, "digest": digest(arrays)}
    return meta, arrays


def digest(arrays: dict[str, np.ndarray]) -> str:
    """A hash of the whole table, so re-running the same input does not rewrite it."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(str(arrays[name].dtype).encode())
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


def typed_column(values: list[Any]) -> np.ndarray | None:
    """Integers or floats when every value is one (as text or number); ``None`` means keep as text."""
    if not values:
        return None
    for kind in (int, float):
        try:
            converted = [_number(v, kind) for v in values]
        except (TypeError, ValueError):
            continue
        return np.array(converted, dtype=np.int64 if kind is int else np.float64)
    return None


def _number(value: Any, kind: type) -> Any:
    if isinstance(value, bool) or value is None:
        raise TypeError
    if isinstance(value, str):
        value = value.strip()
        if kind is int and not value.lstrip("+-").isdigit():
            raise ValueError
    elif kind is int and not isinstance(value, int):
        raise TypeError  # 0.5 must not become 0
    return kind(value)
