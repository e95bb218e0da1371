"""Deterministic stratified train/validation/test splits, with the seed notebooks' subsampling and text knobs."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedx.datasets.dataset import Dataset
from embedx.datasets.errors import DatasetError
from embedx.datasets.knobs import LongTokens, limit_tokens

PARTS = ("train", "validation", "test")


@dataclass(frozen=True, eq=False)
class Splits:
    """Index arrays into ``dataset`` (whose texts already went through the knobs), one per part.

    Rows left out by ``samples_per_class`` are in no part. Each part's indices come in a seeded random
    order, so classes are interleaved even for code that trains without shuffling.
    """

    dataset: Dataset
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    def indices(self, part: str) -> np.ndarray:
        if part not in PARTS:
            raise DatasetError(f"unknown split part {part!r}; choose one of {', '.join(PARTS)}")
        return getattr(self, part)

    def __getitem__(self, part: str) -> Dataset:
        """The rows of one part as a Dataset: ``splits["train"].texts``."""
        return self.dataset.subset(self.indices(part))

    def sizes(self) -> dict[str, int]:
        return {part: len(self.indices(part)) for part in PARTS}

    def __repr__(self) -> str:
        return f"Splits({self.dataset.name!r}, {self.sizes()}, seed={self.settings.get('seed')})"


def split(dataset: Dataset | str, seed: int = 0, train: float = 0.7, validation: float = 0.15, test: float = 0.15,
          samples_per_class: int | None = None, max_tokens: int | None = None, max_token_length: int | None = None,
          long_tokens: LongTokens = "truncate") -> Splits:
    """Split ``dataset`` (or a fetched dataset's name) class by class, reproducibly from ``seed``.

    Each class is shuffled with the seed; its first ``samples_per_class`` rows (the seeds' ``Nsamp``; all when
    None or when the class is smaller) are dealt out by the fractions, each part getting within one row of
    its exact share. So a smaller ``samples_per_class`` gives a subset of a larger one's rows for the same
    seed. ``max_tokens`` and ``max_token_length`` (the seeds' ``maxtokens``/``maxtokenlen``) rewrite the
    texts; see ``knobs.limit_tokens``.
    """
    if isinstance(dataset, str):
        from embedx.datasets.dataset import load

        dataset = load(dataset)
    fractions = _fractions(train, validation, test)
    _check_seed(seed)
    for knob, value in (("samples_per_class", samples_per_class), ("max_tokens", max_tokens),
                        ("max_token_length", max_token_length)):
        _check_positive(knob, value)
    if long_tokens not in ("drop", "truncate"):
        raise DatasetError(f"long_tokens={long_tokens!r}: choose 'drop' or 'truncate'")

    rng = np.random.default_rng(seed)
    codes = dataset.label_ids
    dealt: dict[str, list[np.ndarray]] = {part: [] for part in PARTS}
    for code in range(len(dataset.label_names)):
        members = np.flatnonzero(codes == code)
        members = members[rng.permutation(len(members))][:samples_per_class]
        start = 0
        for part, count in zip(PARTS, _allocate(len(members), fractions), strict=True):
            dealt[part].append(members[start:start + count])
            start += count
    indices = {}
    for part in PARTS:
        joined = np.concatenate(dealt[part]) if dealt[part] else np.empty(0, dtype=np.int64)
        indices[part] = joined[rng.permutation(len(joined))].astype(np.int64)

    if max_tokens is not None or max_token_length is not None:
        dataset = dataset.with_texts([limit_tokens(text, max_tokens, max_token_length, long_tokens)
                                      for text in dataset.texts])
    settings = {"seed": int(seed), "train": train, "validation": validation, "test": test,
                "samples_per_class": samples_per_class, "max_tokens": max_tokens,
                "max_token_length": max_token_length, "long_tokens": long_tokens}
    return Splits(dataset, indices["train"], indices["validation"], indices["test"], settings)


def _allocate(n: int, fractions: np.ndarray) -> np.ndarray:
    """Whole counts summing to ``n``, each within one of ``n * fraction`` (largest remainders get the rest)."""
    exact = n * fractions
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:n - int(counts.sum())]] += 1
    return counts


def _fractions(train: float, validation: float, test: float) -> np.ndarray:
    values = {"train": train, "validation": validation, "test": test}
    for part, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
            raise DatasetError(f"{part}={value!r}: a split fraction must be a number from 0 to 1")
    if not math.isclose(sum(values.values()), 1.0, abs_tol=1e-6):
        raise DatasetError(f"split fractions must sum to 1: train={train} + validation={validation} + "
                           f"test={test} = {sum(values.values()):g}")
    return np.array([train, validation, test], dtype=np.float64)


def _check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise DatasetError(f"seed={seed!r}: use a non-negative integer")


def _check_positive(knob: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise DatasetError(f"{knob}={value!r}: use a positive integer, or None to turn it off")
