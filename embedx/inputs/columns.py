"""Type an input column only when nothing is lost: ``"007"`` stays the string ``"007"``.

A column becomes int64 (or float64) only if every value, read back from the typed array and
written the way the input wrote it, gives the same text (or the same JSON number). Anything
else stays text, exactly as read.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

_INT64 = (-(2**63), 2**63 - 1)
_INTEGER = re.compile(r"-?[0-9]+")


def typed_column(values: list[Any]) -> np.ndarray | None:
    """An int64 or float64 array when every value round-trips exactly; ``None`` means keep as text."""
    if not values:
        return None
    ints = [_as_int(v) for v in values]
    if all(i is not None for i in ints):
        return np.array(ints, dtype=np.int64)
    floats = [_as_float(v) for v in values]
    if all(f is not None for f in floats):
        return np.array(floats, dtype=np.float64)
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and len(value) <= 20 and _INTEGER.fullmatch(value):
        number = int(value)
        if str(number) != value:  # "007", "+7", "-0", " 7": the text would change
            return None
    else:
        return None
    return number if _INT64[0] <= number <= _INT64[1] else None


def _as_float(value: Any) -> float | None:
    """Floats only: an integer among them (``1`` beside ``0.5``) would read back as ``1.0``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        if math.isfinite(number) and repr(number) == value:
            return number
    return None
