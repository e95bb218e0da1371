"""Cached features as the inputs other libraries expect: numpy chunks, a torch Dataset, a tf.data pipeline.

Rows come in the order of an input table (or of given texts), read lazily from the HDF5 file,
so training loops in either framework never need the whole set in memory. Frameworks are
imported only when one of these functions is called.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedx.contract.errors import StoreError
from embedx.features.tokens import label_codes
from embedx.store import layout as L
from embedx.store.reader import FeatureStore, gather

TOKEN_READERS = {"iter_numpy": "iter_token_batches", "torch_dataset": "torch_token_dataset",
                 "tf_dataset": "tf_token_dataset"}


class _Rows:
    """Row numbers, labels and the dataset path for one feature set and input, opened lazily per process."""

    def __init__(self, path: str | Path, embedder: str, *, input: str | None = None, texts: Sequence[str] | None = None,
                 labels: str | None = None, output: str | None = None, config_hash: str | None = None,
                 reader: str = "iter_numpy"):
        self.path = str(path)
        with FeatureStore(path) as store:
            fset = store.feature_set(embedder, config_hash)
            self.set_name = fset.info.name
            levels = {o["level"] for o in fset.info.outputs}
            if (fset.outputs.get(output, {}).get("level") if output is not None else
                    None if "document" in levels else "token" if "token" in levels else None) == "token":
                raise StoreError(f"output {output or fset.info.outputs[0]['name']!r} of set {fset.info.name} is "
                                 f"token-level: read it with embedx.readers.{TOKEN_READERS[reader]}(...) "
                                 "(padded batches with a mask)")
            spec = fset.output_spec(output, "document")
            self.output = spec["name"]
            self.shape = ((spec["layers"],) if spec.get("per_layer") else ()) + (spec["dim"],)
            self.rows = fset.rows(texts, input=None if texts is not None else input)
            self.classes: list[str] = []
            self.y = None
            if labels is not None:
                self.classes, self.y = label_codes(store.input(input).column(labels))
        self._file = None

    def values(self):
        if self._file is None:  # opened on first use, so each DataLoader worker opens its own handle
            import h5py

            # Through symlinks: HDF5 finds the segments relative to the index's real folder.
            self._file = h5py.File(os.path.realpath(self.path), "r")
        return self._file[L.SETS][self.set_name][self.output][L.VALUES]

    def batch(self, index: np.ndarray) -> np.ndarray:
        return gather(self.values(), self.rows[index]).astype(np.float32, copy=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None}


class Chunks:
    """``(X, y)`` chunks in input order, re-iterable; ``classes`` names the label codes of ``y``."""

    def __init__(self, rows: _Rows, chunk_size: int):
        self.rows, self.chunk_size = rows, chunk_size
        self.classes = rows.classes

    def __len__(self) -> int:
        return -(-len(self.rows.rows) // self.chunk_size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        rows = self.rows
        for start in range(0, len(rows.rows), self.chunk_size):
            index = np.arange(start, min(start + self.chunk_size, len(rows.rows)))
            yield rows.batch(index), None if rows.y is None else rows.y[index]


def iter_numpy(path: str | Path, embedder: str, *, input: str | None = None, labels: str | None = None,
               output: str | None = None, config_hash: str | None = None, chunk_size: int = 8192) -> Chunks:
    """``(X, y)`` chunks in input order (``y`` is ``None`` without ``labels``): for scikit-learn ``partial_fit``.

    ``y`` holds int64 codes; the returned object's ``classes`` holds their names.
    """
    return Chunks(_Rows(path, embedder, input=input, labels=labels, output=output, config_hash=config_hash),
                  chunk_size)


def torch_dataset(path: str | Path, embedder: str, *, input: str | None = None, labels: str | None = None,
                  output: str | None = None, config_hash: str | None = None):
    """A map-style ``torch.utils.data.Dataset`` of ``(features, label)`` (or features alone) per input row."""
    import torch
    from torch.utils.data import Dataset

    rows = _Rows(path, embedder, input=input, labels=labels, output=output, config_hash=config_hash,
                 reader="torch_dataset")

    class CachedFeatures(Dataset):
        classes = rows.classes

        def __len__(self) -> int:
            return len(rows.rows)

        def __getitem__(self, i: int):
            x = torch.from_numpy(rows.batch(np.array([i]))[0])
            return x if rows.y is None else (x, int(rows.y[i]))

        def __getitems__(self, indices: list[int]):  # one HDF5 read per batch, not per row
            X = torch.from_numpy(rows.batch(np.asarray(indices)))
            return [X[k] if rows.y is None else (X[k], int(rows.y[i])) for k, i in enumerate(indices)]

    return CachedFeatures()


def tf_dataset(path: str | Path, embedder: str, *, input: str | None = None, labels: str | None = None,
               output: str | None = None, config_hash: str | None = None, chunk_size: int = 1024):
    """A ``tf.data.Dataset`` of ``(features, label)`` (or features) per input row, streamed in chunks.

    Its cardinality is the number of rows (so Keras knows an epoch's length), and its ``classes``
    attribute names the label codes.
    """
    import tensorflow as tf

    rows = _Rows(path, embedder, input=input, labels=labels, output=output, config_hash=config_hash,
                 reader="tf_dataset")

    def generate():
        for start in range(0, len(rows.rows), chunk_size):
            index = np.arange(start, min(start + chunk_size, len(rows.rows)))
            X = rows.batch(index)
            if rows.y is None:
                yield X
            else:
                yield X, rows.y[index]

    x_spec = tf.TensorSpec(shape=(None, *rows.shape), dtype=tf.float32)
    signature = x_spec if rows.y is None else (x_spec, tf.TensorSpec(shape=(None,), dtype=tf.int64))
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature).unbatch()
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(rows.rows)))
    dataset.classes = rows.classes
    return dataset
