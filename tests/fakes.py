"""Deterministic test doubles of real embedders, for tests of the registry, cache and pipeline.

They run through the real registry, store and CLI; only the model is fake. Every real
embedder is tested through its own library in its plugin's tests.
"""

from __future__ import annotations

import numpy as np

import embedx
import embedx.finetune
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


class PooledLayers(Embedder):
    """Per-layer document vectors [3, 4] with BERT-like options (pooling, layers), for layer sweeps."""

    id = "pooled-layers"
    outputs = (Output("doc", DOCUMENT, dim=4, per_layer=True, layers=3),)
    default_outputs = ("doc",)
    pooling_choices = ("cls", "mean", "max")  # what a layer sweep reads, as a real plugin declares it
    layer_options = True

    def __init__(self, pooling: str = "mean", layers: str = "all"):
        self.pooling, self.layers = pooling, layers

    def embed_batch(self, texts):
        out = np.zeros((len(texts), 3, 4), dtype=np.float32)
        for i, text in enumerate(texts):
            digits = sum(c.isdigit() for c in text) / max(len(text), 1)
            out[i, 0] = [len(text) % 7, 1, 0, 0]  # layer 0: noise
            out[i, 1] = [digits, len(text) / 100, 0, 1]
            out[i, 2] = [digits * 2, text.count("!"), 1, 0]
        return {"doc": out}


class MeanAndLayers(Embedder):
    """Like ELMo: a default document vector plus a per-layer document output the layer-mix head can learn from."""

    id = "mean-and-layers"
    outputs = (Output("default", DOCUMENT, dim=4), Output("layers_mean", DOCUMENT, dim=4, per_layer=True, layers=3))
    default_outputs = ("default",)

    def embed_batch(self, texts):
        layers = PooledLayers().embed_batch(texts)["doc"]
        return {"default": layers.mean(1), "layers_mean": layers}


@embedx.hookimpl
def register_embedders(register):
    register(PooledLayers)
    register(MeanAndLayers)
    register(WordStats)
    register(WordStats, id="word-stats-x2", defaults={"scale": 2.0})
    register(LayeredTokens)


class CharCountTuner(embedx.finetune.FineTuner):
    """A fake fine-tuner: softmax regression on character statistics, trained by gradient descent with curves."""

    id = "char-count-tuner"

    def __init__(self, epochs: int = 200, lr: float = 0.5):
        self.epochs, self.lr = epochs, lr

    @staticmethod
    def stats(texts):
        return np.array([[sum(c.isdigit() for c in t) / max(len(t), 1), sum(c.isupper() for c in t) / max(len(t), 1),
                          len(t) / 100, t.count("!"), 1.0] for t in texts])

    def run(self, train, validation, test, n_classes, seed):
        from embedx.finetune import FineTuneResult

        raw = self.stats(train[0])
        mean, std = raw.mean(0), raw.std(0) + 1e-9
        mean[-1], std[-1] = 0.0, 1.0
        self.features = lambda texts: (self.stats(texts) - mean) / std
        X, y = self.features(train[0]), train[1]
        Xv, yv = self.features(validation[0]), validation[1]
        W = np.zeros((X.shape[1], n_classes))
        curves = {"val_accuracy": [], "train_accuracy": []}
        for _ in range(self.epochs):
            p = np.exp(X @ W)
            p /= p.sum(1, keepdims=True)
            W -= self.lr * X.T @ (p - np.eye(n_classes)[y]) / len(X)
            curves["train_accuracy"].append(float(((X @ W).argmax(1) == y).mean()))
            curves["val_accuracy"].append(float(((Xv @ W).argmax(1) == yv).mean()))
        return FineTuneResult((Xv @ W).argmax(1), (self.features(test) @ W).argmax(1), curves)


@embedx.hookimpl
def register_finetuners(register):
    register(CharCountTuner)
