"""Peers: what a user would write without embedx, for the same model and the same numbers.

A peer is any object with ``name``, ``load()``, ``encode(texts, batch_size) -> [n, dim] array``
and ``default_batch_size`` (``None`` when it does not batch). It is built from the embedder
instance, unloaded, so a fresh process can build it too, and reproduces the embedder's default
document output. The families that have one (:mod:`.families`) build these; a plugin's embedder
can return its own from ``throughput_peer()``.

Every framework is imported in ``load()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class SentenceTransformersPeer:
    """``SentenceTransformer.encode`` on the same folder.

    Transformer, Pooling (and Normalize), same dtype and device.
    """

    name = "sentence-transformers encode"
    default_batch_size = 32  # encode's default

    def __init__(self, folder: str, pooling: str, normalize: bool, max_length: int, dtype: str, device: str,
                 threads: int | None):
        self.folder, self.pooling, self.normalize, self.max_length = folder, pooling, normalize, max_length
        self.dtype, self.device, self.threads = dtype, device, threads
        self.model: Any = None

    def load(self) -> None:
        import torch
        from sentence_transformers import SentenceTransformer, models

        if self.threads:
            torch.set_num_threads(self.threads)
        device = self.device if self.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        body = models.Transformer(self.folder, max_seq_length=self.max_length)
        width = getattr(body, "get_embedding_dimension", None) or body.get_word_embedding_dimension
        pooling = models.Pooling(width(), pooling_mode=self.pooling)
        modules = [body, pooling] + ([models.Normalize()] if self.normalize else [])
        self.model = SentenceTransformer(modules=modules, device=device)
        if self.dtype != "float32":
            self.model.to(getattr(torch, self.dtype))

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        out = self.model.encode(texts, batch_size=batch_size, convert_to_numpy=False, convert_to_tensor=True,
                                show_progress_bar=False)
        return out.float().cpu().numpy()


class NumpyWordVectorsPeer:
    """A plain loop: load the matrix and vocabulary yourself, look each token up, pool with numpy.

    Tokenizing is the embedder's own tokenizer (the same tokens, so the same numbers); the
    vectors are read as a user would: ``np.load`` + the word list for a packaged set, gensim's
    ``load_word2vec_format`` for a word2vec / GloVe / .vec file.
    """

    name = "numpy loop"
    default_batch_size = None

    def __init__(self, source: Any, path: str, fmt: str, tokenize: Any, pooling: str, max_length: int | None,
                 normalize: bool, oov: str):
        self.source, self.path, self.format, self.tokenize = source, path, fmt, tokenize
        self.pooling, self.max_length, self.normalize, self.oov = pooling, max_length, normalize, oov
        self.vectors: np.ndarray | None = None
        self.index: dict[str, int] = {}

    def load(self) -> None:
        if self.source is not None:  # a packaged set: its .npy and its parquet word list
            import importlib
            from pathlib import Path

            import pyarrow.parquet as pq

            root = Path(importlib.import_module(self.source.module).ROOT)
            self.vectors = np.load(root / self.source.vectors_file)
            words = pq.read_table(root / self.source.index_file, columns=["index"]).column("index").to_pylist()
        else:
            from gensim.models import KeyedVectors

            kv = KeyedVectors.load_word2vec_format(self.path, binary=self.format == "word2vec-bin",
                                                   no_header=self.format == "glove")
            self.vectors, words = np.asarray(kv.vectors, dtype=np.float32), kv.index_to_key
        self.index = {w: i for i, w in enumerate(words)}

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        vectors, index = self.vectors, self.index
        if vectors is None:
            raise RuntimeError("the numpy loop peer encodes only after load()")
        out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
        for row, text in enumerate(texts):
            tokens = self.tokenize(text)
            if self.max_length is not None:
                tokens = tokens[:self.max_length]
            rows = [index[t] for t in tokens if t in index]
            count = len(rows) if self.oov == "skip" else len(tokens)
            if not rows:
                continue
            picked = vectors[rows]
            if self.pooling == "max":
                out[row] = picked.max(axis=0)
                continue
            total = picked.sum(axis=0, dtype=np.float64)
            out[row] = total / {"mean": count, "sum": 1, "sqrtn": np.sqrt(count)}[self.pooling]
        if self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            np.divide(out, norms, out=out, where=norms > 0)
        return out


class KerasLayerPeer:
    """``hub.KerasLayer`` on the module folder, called on batches as the TF Hub tutorials do.

    ``kind`` is ``text`` (string batch in, vectors out), ``elmo`` (the ``default`` signature's
    ``default`` output; blank texts are zeros, as the embedder gives them) or ``bert`` (WordPiece
    ids from the module's own vocabulary, ``sequence_output`` pooled over real positions).
    """

    default_batch_size = 32

    def __init__(self, folder: str, kind: str, pooling: str = "mean", max_length: int = 512):
        self.folder, self.kind, self.pooling, self.max_length = folder, kind, pooling, max_length
        self.name = f"hub.KerasLayer ({kind})"
        self.layer: Any = None

    def load(self) -> None:
        import os

        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf
        import tensorflow_hub as hub

        self.tf = tf
        if self.kind == "elmo":
            self.layer = hub.KerasLayer(self.folder, signature="default", signature_outputs_as_dict=True)
        else:
            self.layer = hub.KerasLayer(self.folder)
        if self.kind == "bert":
            from tokenizers import BertWordPieceTokenizer

            module = self.layer.resolved_object
            vocab = module.vocab_file.asset_path.numpy().decode("utf-8")
            self.tokenizer = BertWordPieceTokenizer(vocab, lowercase=bool(module.do_lower_case.numpy()))
            self.tokenizer.enable_truncation(self.max_length)

    def encode(self, texts: list[str], batch_size: int) -> np.ndarray:
        parts = [self._batch(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)

    def _batch(self, texts: list[str]) -> np.ndarray:
        tf = self.tf
        if self.kind == "text":
            return np.asarray(self.layer(tf.constant(texts)), dtype=np.float32)
        if self.kind == "elmo":
            joined = [" ".join(t.split()) for t in texts]
            live = [i for i, t in enumerate(joined) if t]
            if not live:
                return np.zeros((len(texts), getattr(self, "dim", 1024)), np.float32)
            result = np.asarray(self.layer(tf.constant([joined[i] for i in live]))["default"], dtype=np.float32)
            self.dim = result.shape[1]
            out = np.zeros((len(texts), self.dim), np.float32)
            out[live] = result
            return out
        encodings = self.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), np.int32)
        mask = np.zeros((len(texts), width), np.int32)
        for i, e in enumerate(encodings):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = 1
        out = self.layer({"input_word_ids": tf.constant(ids), "input_mask": tf.constant(mask),
                          "input_type_ids": tf.zeros_like(ids)})
        x = np.asarray(out["sequence_output"], dtype=np.float32)
        m = mask[:, :, None].astype(np.float32)
        if self.pooling == "cls":
            return x[:, 0]
        if self.pooling == "max":
            return np.where(m > 0, x, -np.inf).max(axis=1)
        return (x * m).sum(axis=1) / (m.sum(axis=1) + 1e-10)
