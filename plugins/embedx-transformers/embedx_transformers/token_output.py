"""The ``tokens`` output: one row per word piece, or per word with its pieces pooled.

Special tokens ([CLS], [SEP]) carry no text, so they are left out: row ``i`` is the ``i``-th
kept piece (or word) of the text. A word is what the tokenizer's pre-tokenizer splits (for
BERT: whitespace and each punctuation character apart), found through the fast tokenizer's
``word_ids``; its string is the original text it covers (only the kept pieces when a cut
falls inside it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def word_spans(word_ids: Sequence[int | None]) -> tuple[np.ndarray, np.ndarray]:
    """``[start, end)`` piece ranges of consecutive pieces sharing a word id (a ``None`` piece stands alone)."""
    n = len(word_ids)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    ids = np.array([-2 - i if w is None else w for i, w in enumerate(word_ids)], dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], n]
    return starts, ends


def pool_pieces(vectors: np.ndarray, starts: np.ndarray, ends: np.ndarray, how: str) -> np.ndarray:
    """One row per word from its pieces' rows: the first piece, the last piece, or their mean."""
    if len(starts) == 0:
        return vectors[:0]
    if how == "first":
        return vectors[starts]
    if how == "last":
        return vectors[ends - 1]
    if how == "mean":
        counts = (ends - starts).reshape((-1,) + (1,) * (vectors.ndim - 1)).astype(vectors.dtype)
        return np.add.reduceat(vectors, starts, axis=0) / counts
    raise ValueError(f"unknown subtoken_pooling {how!r}")


def word_strings(text: str, offsets: Sequence[tuple[int, int]], starts: np.ndarray, ends: np.ndarray) -> list[str]:
    """The text each word covers, from the character offsets of its first and last piece."""
    return [text[offsets[s][0]:offsets[e - 1][1]] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
