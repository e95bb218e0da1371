"""A labelled text collection in memory, and loading a fetched one from the cache."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedx.datasets import cache, registry
from embedx.datasets.errors import DatasetError, NotFetched


@dataclass(frozen=True, eq=False)
class Dataset:
    """Texts with one string label each. ``label_names`` fixes the class order behind ``label_ids``."""

    name: str
    texts: list[str]
    labels: np.ndarray  # of str, one per text
    ids: list[str]
    label_names: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        labels = np.asarray(self.labels, dtype=str).reshape(-1)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "texts", list(self.texts))
        object.__setattr__(self, "ids", [str(i) for i in self.ids])
        object.__setattr__(self, "label_names", tuple(self.label_names))
        if not (len(self.texts) == len(labels) == len(self.ids)):
            raise DatasetError(f"dataset {self.name!r}: {len(self.texts)} texts, {len(labels)} labels and "
                               f"{len(self.ids)} ids; they must match")
        unknown = sorted(set(labels.tolist()) - set(self.label_names))
        if unknown:
            raise DatasetError(f"dataset {self.name!r}: labels {', '.join(map(repr, unknown))} are not among "
                               f"label_names ({', '.join(self.label_names)})")

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, {len(self)} texts, labels {self.label_counts()})"

    @property
    def label_ids(self) -> np.ndarray:
        """Labels as int64 positions in ``label_names``, the form classifiers train on."""
        lookup = {name: i for i, name in enumerate(self.label_names)}
        return np.fromiter((lookup[label] for label in self.labels.tolist()), dtype=np.int64, count=len(self))

    def label_counts(self) -> dict[str, int]:
        """How many texts carry each label, in ``label_names`` order (zeros included)."""
        counts = dict.fromkeys(self.label_names, 0)
        names, numbers = np.unique(self.labels, return_counts=True)
        counts.update(zip(names.tolist(), numbers.tolist(), strict=True))
        return counts

    def subset(self, indices: Sequence[int] | np.ndarray) -> Dataset:
        """The rows at ``indices``, in that order, with the same label names."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return Dataset(self.name, [self.texts[i] for i in idx.tolist()], self.labels[idx],
                       [self.ids[i] for i in idx.tolist()], self.label_names, dict(self.meta))

    def with_texts(self, texts: Sequence[str]) -> Dataset:
        """The same rows with new texts (after a knob rewrote them, say)."""
        return Dataset(self.name, list(texts), self.labels, self.ids, self.label_names, dict(self.meta))


def load(name: str, cache_dir: str | os.PathLike[str] | None = None, fetch: bool = False) -> Dataset:
    """A registered dataset from the cache; with ``fetch=True`` it is downloaded first when missing."""
    info = registry.get(name)
    root = cache.cache_dir(cache_dir)
    meta = cache.read_meta(root, name)
    if meta is None:
        if not fetch:
            raise NotFetched(f"dataset {name!r} is not fetched (looked in {root}); run `embedx datasets fetch "
                             f"{name}` first, or load it with fetch=True")
        from embedx.datasets.fetching import fetch as fetch_dataset

        fetch_dataset(name, root)
        meta = cache.read_meta(root, name) or {}
    path = cache.data_path(root, name)
    texts, labels, ids = [], [], []
    number = 0
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                number += 1
                row = json.loads(line)
                texts.append(row["text"])
                labels.append(row["label"])
                ids.append(row["id"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        where = f"{path}, line {number}" if number else str(path)
        raise DatasetError(f"{where}: unreadable cached dataset "
                           f"({exc.__class__.__name__}: {exc}); delete {path.parent} and fetch {name!r} "
                           "again") from None
    if len(texts) != meta.get("rows"):
        raise DatasetError(f"{path}: {len(texts)} rows, but meta.json says {meta.get('rows')}; delete "
                           f"{path.parent} and fetch {name!r} again")
    return Dataset(name, texts, np.asarray(labels, dtype=str), ids, info.label_names, meta)
