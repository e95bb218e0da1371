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

    A dataset that carries its own parts (``meta["split_values"]``: a file's ``--split-column``) keeps them:
    its test rows stay the test rows, validation is carved from train when it has none (``validation /
    (train + validation)`` of each class, seeded), and ``samples_per_class`` caps train only.
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
    given = dataset.meta.get("split_values")
    if given is not None:  # the dataset's own parts (a file's split column, a source's standard split)
        share = validation / (train + validation) if train + validation > 0 else 0.0
        parts = given_split(codes, np.asarray(given, dtype=object), seed=seed, validation_share=share,
                            samples_per_class=samples_per_class, column=dataset.meta.get("split_column", "split"))
        indices = {part: rows[rng.permutation(len(rows))] for part, rows in parts.items()}
    else:
        indices = _dealt(codes, len(dataset.label_names), fractions, samples_per_class, rng)

    if max_tokens is not None or max_token_length is not None:
        dataset = dataset.with_texts([limit_tokens(text, max_tokens, max_token_length, long_tokens)
                                      for text in dataset.texts])
    settings = {"seed": int(seed), "train": train, "validation": validation, "test": test,
                "samples_per_class": samples_per_class, "max_tokens": max_tokens,
                "max_token_length": max_token_length, "long_tokens": long_tokens,
                "given": dataset.meta.get("split_column") if given is not None else None}
    return Splits(dataset, indices["train"], indices["validation"], indices["test"], settings)


def _dealt(codes: np.ndarray, n_classes: int, fractions: np.ndarray, samples_per_class: int | None,
           rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each class shuffled, capped at ``samples_per_class`` and dealt out by the fractions; parts shuffled."""
    dealt: dict[str, list[np.ndarray]] = {part: [] for part in PARTS}
    for code in range(n_classes):
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
    return indices


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


#: accepted values of a split column (compared case-insensitively, surrounding spaces ignored)
PART_SPELLINGS = {
    "train": ("train", "training", "trn"),
    "validation": ("validation", "valid", "val", "dev", "development", "devel"),
    "test": ("test", "testing", "tst"),
}
_SPELLING = {spelling: part for part, spellings in PART_SPELLINGS.items() for spelling in spellings}


def spellings_help() -> str:
    return "; ".join(f"{part}: {', '.join(s)}" for part, s in PART_SPELLINGS.items())


def parse_fractions(text: str, option: str = "--split") -> tuple[float, float, float]:
    """``"0.7,0.15,0.15"`` as three checked fractions; one clear error for anything else.

    Train and test must be above 0; validation may be 0 (cross-validation, the default protocol,
    draws its folds from train+validation and needs no separate validation part).
    """
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 3:
        raise DatasetError(f"{option} {text!r}: give three fractions train,validation,test such as 0.7,0.15,0.15 "
                           f"(got {len(parts)})")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise DatasetError(f"{option} {text!r}: {parts!r} are not all numbers; give three fractions train,"
                           "validation,test such as 0.7,0.15,0.15") from None
    train, validation, test = values
    check_fractions(train, validation, test, option=option)
    return train, validation, test


def check_fractions(train: float, validation: float, test: float, option: str = "--split") -> None:
    """The rules for training splits: each in [0, 1], summing to 1, train and test above 0."""
    try:
        _fractions(train, validation, test)
    except DatasetError as exc:
        raise DatasetError(f"{option}: {exc}") from None
    if not train > 0:
        raise DatasetError(f"{option}: the train fraction is {train:g}; it must be above 0")
    if not test > 0:
        raise DatasetError(f"{option}: the test fraction is {test:g}; it must be above 0, or every number would "
                           "come from rows used in training (use --split-column to give a test part)")


def given_split(codes: np.ndarray, values: np.ndarray, *, seed: int = 0, validation_share: float = 0.15 / 0.85,
                samples_per_class: int | None = None, column: str = "split") -> dict[str, np.ndarray]:
    """Index arrays per part from a column of split names (``values``, one per row; see ``PART_SPELLINGS``).

    With no validation rows, a validation part of ``validation_share`` of each class's train rows is
    carved out, stratified and seeded. ``samples_per_class`` caps each class in train (after carving).
    """
    normalised = [str(v).strip().lower() for v in np.asarray(values).tolist()]
    unknown = sorted({v for v in normalised if v not in _SPELLING})
    if unknown:
        first = normalised.index(unknown[0])
        raise DatasetError(f"split column {column!r}: row {first + 1} has {values[first]!r}, which is not a split "
                           f"name (accepted, any case: {spellings_help()})")
    part_of = np.array([PARTS.index(_SPELLING[v]) for v in normalised], dtype=np.int64)
    rng = np.random.default_rng(seed)
    index = {part: np.flatnonzero(part_of == i) for i, part in enumerate(PARTS)}
    for part in ("train", "test"):
        if not len(index[part]):
            raise DatasetError(f"split column {column!r} has no {part} rows (values seen: "
                               f"{', '.join(sorted(set(normalised)))})")
    if not len(index["validation"]):
        carved_train, carved_val = [], []
        for code in np.unique(codes[index["train"]]):
            members = index["train"][codes[index["train"]] == code]
            members = members[rng.permutation(len(members))]
            n_val = int(round(len(members) * validation_share)) if len(members) > 1 else 0
            carved_val.append(members[:n_val])
            carved_train.append(members[n_val:])
        index["train"], index["validation"] = np.concatenate(carved_train), np.concatenate(carved_val)
    if samples_per_class is not None:
        _check_positive("samples_per_class", samples_per_class)
        kept = []
        for code in np.unique(codes[index["train"]]):
            members = index["train"][codes[index["train"]] == code]
            kept.append(members[rng.permutation(len(members))][:samples_per_class])
        index["train"] = np.concatenate(kept)
    return {part: np.sort(rows).astype(np.int64) for part, rows in index.items()}
