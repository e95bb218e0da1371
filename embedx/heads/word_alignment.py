"""Map an embedder's stored tokens (word pieces, or its own words) onto a tagged dataset's words.

The store keeps each token's string but no character offsets or word spans, and an embedder's words need
not be the dataset's (BERT splits ``@user`` into ``@`` and ``user``). So tokens are matched to the text by
their characters: both sides are normalised the way uncased WordPiece vocabularies are (NFD, accents
dropped, lower case, no whitespace, ``##`` stripped), and each token consumes its characters from the
dataset's words in order. A token that does not match where it stands (``[UNK]``, a character the
tokenizer rewrote) covers the text up to where the next matching token is found again, so one odd token
never shifts the rest of the sentence.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Literal

import numpy as np

SubtokenPooling = Literal["first", "mean"]


def normalise(text: str) -> str:
    """Characters as an uncased WordPiece tokenizer sees them: accents dropped, lower case, no whitespace."""
    if text.startswith("##") and len(text) > 2:
        text = text[2:]
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn" and not c.isspace()).lower()


def align(words: Sequence[str], tokens: Sequence[str]) -> np.ndarray:
    """The dataset word each token belongs to (its first character's word), ``-1`` for a token past the text."""
    owner: list[int] = []
    parts = []
    for i, word in enumerate(words):
        chars = normalise(word)
        parts.append(chars)
        owner.extend([i] * len(chars))
    text = "".join(parts)
    pieces = [normalise(t) for t in tokens]
    out = np.full(len(tokens), -1, dtype=np.int64)
    pos = 0
    for j, piece in enumerate(pieces):
        if pos >= len(text):
            break
        out[j] = owner[pos]
        if piece and text.startswith(piece, pos):
            pos += len(piece)
            continue
        after = next((p for p in pieces[j + 1:] if p), None)
        found = text.find(after, pos + 1) if after else -1
        pos = found if found != -1 else (pos + max(1, len(piece)) if after else len(text))
    return out


def word_vectors(words: Sequence[str], tokens: Sequence[str], vectors: np.ndarray,
                 how: SubtokenPooling = "first") -> tuple[np.ndarray, np.ndarray]:
    """One vector per dataset word from its tokens' vectors (the first token's, or their mean), and which words
    have any token at all (none when the embedder cut the text short)."""
    owner = align(words, tokens)
    n = len(words)
    out = np.zeros((n, *vectors.shape[1:]), dtype=np.float32)
    has = np.zeros(n, dtype=bool)
    if how == "first":
        seen = owner >= 0
        firsts = np.unique(owner[seen], return_index=True)
        rows = np.flatnonzero(seen)[firsts[1]]
        out[firsts[0]] = vectors[rows]
        has[firsts[0]] = True
        return out, has
    if how != "mean":
        raise ValueError(f"subtokens={how!r}: choose first or mean")
    counts = np.zeros(n, dtype=np.float32)
    for j, w in enumerate(owner.tolist()):
        if w >= 0:
            out[w] += vectors[j]
            counts[w] += 1
    has = counts > 0
    out[has] /= counts[has].reshape((-1,) + (1,) * (vectors.ndim - 1))
    return out, has
