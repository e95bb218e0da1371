"""Token-level outputs as sequence models want them: padded batches with a mask, or ragged.

A token output is stored ragged (``values[offsets[i]:offsets[i+1]]`` is row ``i``), so a batch is read
as a few slices of the HDF5 dataset, never the whole output. Rows come in input order (duplicates
repeated) unless ``bucket=True``, which sorts rows by length within a window of batches so padding
stays small while every row is still yielded exactly once. Frameworks are imported only inside the
functions that need them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedx.contract.errors import OptionError
from embedx.store import layout as L
from embedx.store.reader import FeatureStore, gather, missing_rows

BLOCK_BYTES = 64 << 20  # one HDF5 read covers at most this much of a token output
GAP_ROWS = 256  # token rows between two wanted ranges that are read rather than skipped


@dataclass
class TokenBatch:
    """One padded batch. Unpacks as ``values, mask, labels, keys``; ``rows`` and ``tokens`` ride along.

    values: ``[B, T, (L,) D]``, zeros where ``mask`` is False; mask: ``bool [B, T]``; labels: ``int64 [B]``
    codes into the reader's ``classes`` (None without ``labels``); keys: content keys ``S32 [B]``;
    rows: the input rows of the batch (they differ from a running count only with ``bucket=True``);
    tokens: the token strings per row, cut like the values (None unless ``with_tokens``).
    """

    values: np.ndarray
    mask: np.ndarray
    labels: np.ndarray | None
    keys: np.ndarray
    rows: np.ndarray
    tokens: list[list[str]] | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.values, self.mask, self.labels, self.keys))


class TokenRows:
    """Where each input row's tokens lie in one token output, its labels, and a lazily opened handle.

    Holds two int64 offsets per input row and the label codes; values are read per batch. Picklable, so
    each DataLoader worker opens its own HDF5 handle.
    """

    def __init__(self, path: str | Path, embedder: str, *, input: str | None = None,
                 texts: Sequence[str] | None = None, labels: str | None = None, output: str | None = None,
                 config_hash: str | None = None, max_tokens: int | None = None,
                 layers: int | Sequence[int] | None = None, layer_weights: Sequence[float] | None = None):
        if max_tokens is not None and max_tokens < 1:
            raise OptionError(f"max_tokens={max_tokens}: give a number of tokens of at least 1")
        if labels is not None and texts is not None:
            raise OptionError("labels= names a column of an input table; with texts= there is none (pass input=)")
        self.path = str(path)
        with FeatureStore(path) as store:
            fset = store.feature_set(embedder, config_hash)
            self.set_name = fset.info.name
            spec = fset.output_spec(output, "token")
            self.output = spec["name"]
            self.rows = fset.rows(texts, input=None if texts is not None else input)
            offsets = fset.group[self.output][L.OFFSETS]
            self.starts = gather(offsets, self.rows)
            self.stops = gather(offsets, self.rows + 1)
            self.keys = gather(fset.group[L.KEYS], self.rows)
            self.classes: list[str] = []
            self.y: np.ndarray | None = None
            if labels is not None:
                self.classes, self.y = label_codes(store.input(input).column(labels))
        if max_tokens is not None:
            self.stops = np.minimum(self.stops, self.starts + max_tokens)
        self.lengths = (self.stops - self.starts).astype(np.int64)
        self.select = layer_selection(spec, layers, layer_weights)
        self.token_shape = self.select.shape
        self._file: Any = None

    def __len__(self) -> int:
        return len(self.rows)

    def _group(self):
        if self._file is None:
            import h5py

            # Through symlinks: HDF5 finds the segments relative to the index's real folder.
            self._file = h5py.File(os.path.realpath(self.path), "r")
        return self._file[L.SETS][self.set_name][self.output]

    def values(self, index: np.ndarray, cast: bool = True) -> list[np.ndarray]:
        """The token vectors of input rows ``index``, one ``[n_tokens, (L,) D]`` array each (float32 if ``cast``)."""
        group = self._group()
        pieces = read_ranges(group[L.VALUES], self.starts[index], self.stops[index])
        return [self.select(p).astype(np.float32, copy=False) if cast else self.select(p) for p in pieces]

    def tokens(self, index: np.ndarray) -> list[list[str]]:
        pieces = read_ranges(self._group()[L.TOKENS], self.starts[index], self.stops[index], check=False)
        return [[t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in p] for p in pieces]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_file": None}


def label_codes(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Class names (sorted) and each row's code into them."""
    names = np.asarray(values).astype(str)
    classes = sorted(set(names.tolist()))
    lookup = {c: i for i, c in enumerate(classes)}
    return classes, np.array([lookup[v] for v in names.tolist()], dtype=np.int64)


class _Selection:
    """Picks layers of a per-layer token array ``[n, L, D]``: one layer, several, or a weighted mix.

    Plain data, no closures, so a reader pickles into DataLoader worker processes.
    """

    def __init__(self, shape: tuple[int, ...], index: list[int] | None = None, weights: np.ndarray | None = None,
                 single: bool = False):
        self.shape, self.index, self.weights, self.single = shape, index, weights, single

    def __call__(self, values: np.ndarray) -> np.ndarray:
        if self.index is None:
            return values
        if self.weights is not None:
            return np.tensordot(values[:, self.index], self.weights, axes=([1], [0]))
        return values[:, self.index[0]] if self.single else values[:, self.index]


def layer_selection(spec: dict[str, Any], layers: int | Sequence[int] | None,
                    weights: Sequence[float] | None) -> _Selection:
    """``layers`` (an index, or a list) and ``weights`` (a mix over the chosen layers, or over all) as a function."""
    dim = int(spec["dim"])
    if not spec.get("per_layer"):
        if layers is not None or weights is not None:
            raise OptionError(f"output {spec['name']!r} stores one layer; layers= and layer_weights= need a "
                              "per-layer output (extract with layers=all)")
        return _Selection((dim,))
    count = int(spec["layers"])
    chosen = list(range(count)) if layers is None else [layers] if isinstance(layers, int) else list(layers)
    bad = [i for i in chosen if not -count <= int(i) < count]
    if bad or not chosen:
        raise OptionError(f"layers={layers!r}: output {spec['name']!r} has {count} layers (0..{count - 1}, or "
                          "negative from the last)")
    index = [int(i) % count for i in chosen]
    if weights is not None:
        w = np.asarray(weights, dtype=np.float32)
        if w.shape != (len(index),) or not np.isfinite(w).all():
            raise OptionError(f"layer_weights: give {len(index)} finite numbers, one per chosen layer "
                              f"(got {len(w.ravel())})")
        return _Selection((dim,), index, w)
    if isinstance(layers, int):
        return _Selection((dim,), index, single=True)
    if index == list(range(count)):
        return _Selection((count, dim))
    return _Selection((len(index), dim), index)


def read_ranges(dataset, starts: np.ndarray, stops: np.ndarray, check: bool = True) -> list[np.ndarray]:
    """``[dataset[a:b] for a, b in zip(starts, stops)]`` in few reads: nearby ranges share one slice."""
    n = len(starts)
    out: list[np.ndarray] = [np.empty((0, *dataset.shape[1:]), dtype=dataset.dtype)] * n
    row_bytes = max(1, dataset.dtype.itemsize * int(np.prod(dataset.shape[1:], dtype=np.int64)))
    order = [int(i) for i in np.argsort(starts, kind="stable") if stops[i] > starts[i]]
    k = 0
    while k < len(order):
        group = [order[k]]
        lo, hi = int(starts[order[k]]), int(stops[order[k]])
        k += 1
        while k < len(order):
            a, b = int(starts[order[k]]), int(stops[order[k]])
            if a > hi + GAP_ROWS or (max(hi, b) - lo) * row_bytes > BLOCK_BYTES:
                break
            group.append(order[k])
            hi = max(hi, b)
            k += 1
        block = dataset[lo:hi]
        if check and dataset.is_virtual:
            missing_rows(dataset, block)
        for i in group:
            out[i] = block[int(starts[i]) - lo:int(stops[i]) - lo]
    return out


def batch_order(lengths: np.ndarray, batch_size: int, bucket: bool = False, window: int = 50) -> list[np.ndarray]:
    """Input rows grouped into batches: in input order, or sorted by length within windows of ``window`` batches.

    Either way every row appears exactly once and there are ``ceil(n / batch_size)`` batches.
    """
    if batch_size < 1:
        raise OptionError(f"batch_size={batch_size}: give at least 1")
    n = len(lengths)
    if not bucket:
        return [np.arange(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if window < 1:
        raise OptionError(f"bucket_window={window}: give at least 1 batch")
    batches: list[np.ndarray] = []
    span = batch_size * window
    for s in range(0, n, span):
        rows = np.arange(s, min(s + span, n))
        rows = rows[np.argsort(lengths[rows], kind="stable")]
        batches.extend(rows[i:i + batch_size] for i in range(0, len(rows), batch_size))
    return batches


def pad(arrays: list[np.ndarray], inner: tuple[int, ...], padding: str = "right",
        length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack ragged ``[n_i, *inner]`` arrays into ``[B, T, *inner]`` zeros plus a ``bool [B, T]`` mask."""
    if padding not in ("right", "left"):
        raise OptionError(f"padding={padding!r}: choose 'right' or 'left'")
    T = max((len(a) for a in arrays), default=0) if length is None else length
    values = np.zeros((len(arrays), T, *inner), dtype=np.float32)
    mask = np.zeros((len(arrays), T), dtype=bool)
    for i, a in enumerate(arrays):
        n = min(len(a), T)
        if padding == "right":
            values[i, :n], mask[i, :n] = a[:n], True
        elif n:
            values[i, T - n:], mask[i, T - n:] = a[:n], True
    return values, mask


class TokenBatches:
    """Padded token batches, re-iterable (one pass per epoch), with ``classes``, ``lengths`` and ``len()``."""

    def __init__(self, rows: TokenRows, batch_size: int, padding: str, bucket: bool, bucket_window: int,
                 with_tokens: bool):
        if padding not in ("right", "left"):
            raise OptionError(f"padding={padding!r}: choose 'right' or 'left'")
        self.reader, self.padding, self.with_tokens = rows, padding, with_tokens
        self.batches = batch_order(rows.lengths, batch_size, bucket, bucket_window)

    @property
    def classes(self) -> list[str]:
        return self.reader.classes

    @property
    def lengths(self) -> np.ndarray:
        return self.reader.lengths

    @property
    def token_shape(self) -> tuple[int, ...]:
        return self.reader.token_shape

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[TokenBatch]:
        for index in self.batches:
            yield self.batch(index)

    def batch(self, index: np.ndarray) -> TokenBatch:
        values, mask = pad(self.reader.values(index), self.reader.token_shape, self.padding)
        y = None if self.reader.y is None else self.reader.y[index]
        tokens = self.reader.tokens(index) if self.with_tokens else None
        return TokenBatch(values, mask, y, self.reader.keys[index], index, tokens)


def iter_token_batches(path: str | Path, embedder: str, *, input: str | None = None,
                       texts: Sequence[str] | None = None, labels: str | None = None, output: str | None = None,
                       config_hash: str | None = None, batch_size: int = 32, max_tokens: int | None = None,
                       padding: str = "right", bucket: bool = False, bucket_window: int = 50,
                       layers: int | Sequence[int] | None = None, layer_weights: Sequence[float] | None = None,
                       with_tokens: bool = False) -> TokenBatches:
    """Padded batches of a token output (:class:`TokenBatch`: ``values, mask, labels, keys``), streamed from disk.

    ``max_tokens`` keeps each text's first tokens; ``padding`` puts the zeros right or left; ``bucket`` sorts
    rows by length within ``bucket_window`` batches. ``layers`` picks one layer (an int: the layer axis
    goes) or several of a per-layer output; ``layer_weights`` mixes the chosen layers (all by default)
    into one vector. ``labels`` names an input column: codes per row, names in ``.classes``.
    """
    rows = TokenRows(path, embedder, input=input, texts=texts, labels=labels, output=output,
                     config_hash=config_hash, max_tokens=max_tokens, layers=layers, layer_weights=layer_weights)
    return TokenBatches(rows, batch_size, padding, bucket, bucket_window, with_tokens)


def torch_token_dataset(path: str | Path, embedder: str, *, input: str | None = None,
                        texts: Sequence[str] | None = None, labels: str | None = None, output: str | None = None,
                        config_hash: str | None = None, max_tokens: int | None = None, padding: str = "right",
                        layers: int | Sequence[int] | None = None, layer_weights: Sequence[float] | None = None):
    """A map-style torch ``Dataset``: item ``i`` is ``values [n_tokens, (L,) D]`` (with its label code).

    ``dataset.collate`` pads a batch into ``(values, mask[, labels])``; ``dataset.collate_ragged`` gives a
    ``torch.nested`` tensor (a list of tensors where nested tensors cannot be made);
    ``dataset.batch_sampler(batch_size, bucket=True)`` groups rows of similar length.
    """
    import torch
    from torch.utils.data import Dataset

    rows = TokenRows(path, embedder, input=input, texts=texts, labels=labels, output=output,
                     config_hash=config_hash, max_tokens=max_tokens, layers=layers, layer_weights=layer_weights)
    if padding not in ("right", "left"):
        raise OptionError(f"padding={padding!r}: choose 'right' or 'left'")

    def split(items):
        if rows.y is None:
            return items, None
        return [x for x, _ in items], torch.tensor([y for _, y in items], dtype=torch.int64)

    class CachedTokens(Dataset):
        classes = rows.classes
        lengths = rows.lengths
        token_shape = rows.token_shape

        def __len__(self) -> int:
            return len(rows)

        def __getitem__(self, i: int):
            return self.__getitems__([i])[0]

        def __getitems__(self, indices: list[int]):  # one pass over HDF5 per batch, not per row
            values = [torch.from_numpy(v) for v in rows.values(np.asarray(indices, dtype=np.int64))]
            return values if rows.y is None else [(v, int(rows.y[i])) for v, i in zip(values, indices, strict=True)]

        @staticmethod
        def collate(items):
            xs, y = split(items)
            values, mask = pad([x.numpy() for x in xs], rows.token_shape, padding)
            out = (torch.from_numpy(values), torch.from_numpy(mask))
            return out if y is None else (*out, y)

        @staticmethod
        def collate_ragged(items):
            xs, y = split(items)
            nested: Any = list(xs)
            for layout in ("jagged", "strided"):  # jagged where this torch has it, else the older layout
                try:
                    nested = torch.nested.nested_tensor(list(xs), layout=getattr(torch, layout))
                    break
                except (RuntimeError, ValueError, AttributeError, TypeError):
                    continue
            return nested if y is None else (nested, y)

        @staticmethod
        def batch_sampler(batch_size: int, bucket: bool = False, window: int = 50) -> list[list[int]]:
            return [b.tolist() for b in batch_order(rows.lengths, batch_size, bucket, window)]

    return CachedTokens()


def tf_token_dataset(path: str | Path, embedder: str, *, input: str | None = None,
                     texts: Sequence[str] | None = None, labels: str | None = None, output: str | None = None,
                     config_hash: str | None = None, batch_size: int = 32, max_tokens: int | None = None,
                     padding: str = "right", bucket: bool = False, bucket_window: int = 50,
                     layers: int | Sequence[int] | None = None, layer_weights: Sequence[float] | None = None,
                     ragged: bool = False, with_tokens: bool = False):
    """A ``tf.data.Dataset`` of batches: ``({"values", "mask"}[, labels])``, or ragged ``{"values"}``.

    Padded: ``values [B, T, (L,) D]`` and ``mask bool [B, T]``; ``ragged=True``: ``values`` is a
    ``tf.RaggedTensor [B, None, (L,) D]``. ``with_tokens`` adds ``tokens`` (strings, "" as padding, or
    ragged). The cardinality (batches per epoch) is known, so Keras never runs out of data. The
    dataset has ``classes`` (label names) as an attribute.
    """
    import tensorflow as tf

    batches = iter_token_batches(path, embedder, input=input, texts=texts, labels=labels, output=output,
                                 config_hash=config_hash, batch_size=batch_size, max_tokens=max_tokens,
                                 padding=padding, bucket=bucket, bucket_window=bucket_window, layers=layers,
                                 layer_weights=layer_weights, with_tokens=with_tokens)
    inner = batches.token_shape
    has_y = batches.reader.y is not None

    def generate():
        for b in batches:
            if ragged:
                flat = np.concatenate([v[m] for v, m in zip(b.values, b.mask, strict=True)]) if len(b.values) \
                    else np.zeros((0, *inner), np.float32)
                lengths = b.mask.sum(axis=1)
                x: dict[str, Any] = {"values": tf.RaggedTensor.from_row_lengths(flat, lengths)}
                if with_tokens:
                    words = [t.encode("utf-8") for row in (b.tokens or []) for t in row]
                    x["tokens"] = tf.RaggedTensor.from_row_lengths(tf.constant(words, tf.string, shape=(len(words),)),
                                                                   lengths)
            else:
                x = {"values": b.values, "mask": b.mask}
                if with_tokens:
                    x["tokens"] = _pad_strings(b.tokens or [], b.mask, padding)
            yield (x, b.labels) if has_y else x

    if ragged:
        spec: dict[str, Any] = {"values": tf.RaggedTensorSpec(shape=(None, None, *inner), dtype=tf.float32,
                                                              ragged_rank=1)}
        if with_tokens:
            spec["tokens"] = tf.RaggedTensorSpec(shape=(None, None), dtype=tf.string, ragged_rank=1)
    else:
        spec = {"values": tf.TensorSpec(shape=(None, None, *inner), dtype=tf.float32),
                "mask": tf.TensorSpec(shape=(None, None), dtype=tf.bool)}
        if with_tokens:
            spec["tokens"] = tf.TensorSpec(shape=(None, None), dtype=tf.string)
    signature: Any = (spec, tf.TensorSpec(shape=(None,), dtype=tf.int64)) if has_y else spec
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(batches)))
    dataset.classes = batches.classes
    return dataset


def _pad_strings(tokens: list[list[str]], mask: np.ndarray, padding: str) -> np.ndarray:
    """Token strings as a UTF-8 ``[B, T]`` array laid out like ``mask`` (b"" as padding)."""
    out = np.full(mask.shape, b"", dtype=object)
    for i, toks in enumerate(tokens):
        n = int(mask[i].sum())
        cut = [t.encode("utf-8") for t in toks[:n]]
        if padding == "right":
            out[i, :n] = cut
        elif n:
            out[i, mask.shape[1] - n:] = cut
    return out
