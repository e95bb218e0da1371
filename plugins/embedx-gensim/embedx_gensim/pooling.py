"""Pool per-token vectors into one vector per text, for a whole batch at once.

All texts' token vectors sit in one ``[n_tokens, dim]`` matrix; ``np.add.reduceat`` and
``np.maximum.reduceat`` reduce each text's contiguous run of rows without a Python loop per
token. Sums accumulate in float64 so long texts do not lose precision.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Pooling = Literal["mean", "sum", "sqrtn", "max"]


def pool(vectors: np.ndarray, lengths: np.ndarray, include: np.ndarray, method: Pooling) -> np.ndarray:
    """``[n_texts, dim]`` float32: pool the ``include``-d rows of each text's run of ``vectors``.

    ``lengths[i]`` is how many consecutive rows belong to text ``i``. ``sqrtn`` is the sum
    divided by the square root of the count (TF Hub's ``sqrtn`` combiner). A text with no
    included row gets the zero vector.
    """
    n, dim = len(lengths), vectors.shape[1]
    out = np.zeros((n, dim), dtype=np.float32)
    text_of_row = np.repeat(np.arange(n), lengths)
    rows = vectors[include]
    counts = np.bincount(text_of_row[include], minlength=n)
    has = counts > 0
    if not has.any():
        return out
    starts = (np.cumsum(counts) - counts)[has]
    if method == "max":
        out[has] = np.maximum.reduceat(rows, starts, axis=0)
        return out
    sums = np.add.reduceat(rows.astype(np.float64), starts, axis=0)
    if method == "mean":
        sums /= counts[has][:, None]
    elif method == "sqrtn":
        sums /= np.sqrt(counts[has])[:, None]
    elif method != "sum":
        raise ValueError(f"unknown pooling {method!r}")
    out[has] = sums
    return out


def l2_normalize(matrix: np.ndarray) -> np.ndarray:
    """Scale each row to unit length in place; zero rows stay zero."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    np.divide(matrix, norms, out=matrix, where=norms > 0)
    return matrix
