"""Deterministic test doubles of real embedders, for tests of the registry, cache and pipeline.

They run through the real registry, store and CLI; only the model is fake. Every real
embedder is tested through its own library in its plugin's tests.
"""

from __future__ import annotations

import numpy as np

import embedx
from embedx import DOCUMENT, TOKEN, Embedder, Embeddings, Output, Ragged


class WordStats(Embedder):
    """doc = [n_words, n_chars, mean word length, scale]; tokens = [len(word), position] per word."""

    id = "word-stats"
    description = "fake: counts words and characters"
    outputs = (Output("doc", DOCUMENT, dim=4), Output("tokens", TOKEN, dim=2))
    default_outputs = ("doc",)
    batch_size = 4
    calls: list[list[str]] = []  # every batch seen, across instances, so tests can count work

    def __init__(self, scale: float = 1.0, fail_on: str = "", bad: str = "", max_length: int | None = None):
        self.scale, self.fail_on, self.bad, self.max_length = scale, fail_on, bad, max_length

    def embed_batch(self, texts):
        WordStats.calls.append(list(texts))
        if self.fail_on and any(self.fail_on in t for t in texts):
            raise RuntimeError(f"cannot embed {self.fail_on!r}")
        poisoned = self.bad and any("POISON" in t for t in texts)
        docs, arrays, tokens, truncated = [], [], [], []
        for text in texts:
            words = text.split()
            cut = max(0, len(words) - self.max_length) if self.max_length else 0
            words = words[:len(words) - cut]
            truncated.append(cut)
            mean = float(np.mean([len(w) for w in words])) if words else 0.0
            docs.append([len(words), len(text), mean, self.scale])
            arrays.append(np.array([[len(w), i] for i, w in enumerate(words)], dtype=np.float32).reshape(-1, 2))
            tokens.append(words)
        doc = np.array(docs, dtype=np.float32)
        if poisoned and self.bad == "nan":
            doc[0, 0] = np.nan
        if poisoned and self.bad == "shape":
            doc = doc[:, :3]
        if poisoned and self.bad == "rows":
            doc = doc[:-1]
        if poisoned and self.bad == "int":
            doc = doc.astype(np.int64)
        return Embeddings({"doc": doc, "tokens": Ragged(arrays, tokens)}, truncated)


class LayeredTokens(Embedder):
    """Per-layer token output [n_tokens, 3, 2] and per-layer document output [3, 2]."""

    id = "layered"
    outputs = (Output("layers", TOKEN, dim=2, per_layer=True), Output("pooled", DOCUMENT, dim=2, per_layer=True))
    default_outputs = ("layers", "pooled")

    def embed_batch(self, texts):
        arrays, tokens, pooled = [], [], []
        for text in texts:
            words = text.split()
            base = np.array([[len(w), k] for w in words for k in range(3)], dtype=np.float32).reshape(len(words), 3, 2)
            arrays.append(base)
            tokens.append(words)
            pooled.append(base.mean(0) if words else np.zeros((3, 2), np.float32))
        return {"layers": Ragged(arrays, tokens), "pooled": np.array(pooled, dtype=np.float32).reshape(-1, 3, 2)}


@embedx.hookimpl
def register_embedders(register):
    register(WordStats)
    register(WordStats, id="word-stats-x2", defaults={"scale": 2.0})
    register(LayeredTokens)
