"""Deterministic stratified train/validation/test splits that keep each text's rows together, with the seed
notebooks' subsampling and text knobs."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedx.datasets.dataset import Dataset
from embedx.datasets.errors import DatasetError
from embedx.datasets.grouping import (
    DUPLICATES,
    Duplicates,
    Grouping,
    class_counts,
    deal,
    group_ids,
    majority,
    summarise,
)
from embedx.datasets.knobs import LongTokens, limit_tokens

PARTS = ("train", "validation", "test")


@dataclass(frozen=True, eq=False)
class Splits:
    """Index arrays into ``dataset`` (whose texts already went through the knobs), one per part.

    Rows left out by ``samples_per_class`` are in no part. Each part's indices come in a seeded random
    order, so classes are interleaved even for code that trains without shuffling. ``grouping`` says how
    repeated texts were kept together (see :class:`embedx.datasets.grouping.Grouping` for its fields).
    """

    dataset: Dataset
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)
    grouping: Grouping = field(default_factory=Grouping)

    def indices(self, part: str) -> np.ndarray:
        if part not in PARTS:
            raise DatasetError(f"unknown split part {part!r}; choose one of {', '.join(PARTS)}")
        return getattr(self, part)

    def __getitem__(self, part: str) -> Dataset:
        """The rows of one part as a Dataset: ``splits["train"].texts``."""
        return self.dataset.subset(self.indices(part))

    def sizes(self) -> dict[str, int]:
        return {part: len(self.indices(part)) for part in PARTS}

    def report(self) -> dict[str, Any]:
        """``grouping`` as a plain dict: duplicate rows, groups, cross-split texts, drift, warnings."""
        return self.grouping.as_dict()

    def __repr__(self) -> str:
        return f"Splits({self.dataset.name!r}, {self.sizes()}, seed={self.settings.get('seed')})"


def split(dataset: Dataset | str, seed: int = 0, train: float = 0.7, validation: float = 0.15, test: float = 0.15,
          samples_per_class: int | None = None, max_tokens: int | None = None, max_token_length: int | None = None,
          long_tokens: LongTokens = "truncate", duplicates: Duplicates = "group") -> Splits:
    """Split ``dataset`` (or a fetched dataset's name) stratified by class, reproducibly from ``seed``.

    ``max_tokens`` and ``max_token_length`` (the seeds' ``maxtokens``/``maxtokenlen``) rewrite the texts
    first (see ``knobs.limit_tokens``). Then every text's rows form one group (same content key), and groups
    are dealt out whole by the fractions, stratified as the groups allow: with no repeated text each part
    gets within one row of its exact share of each class. ``samples_per_class`` (the seeds' ``Nsamp``)
    keeps the first that many texts of each class in a seeded order (all when None or when the class is
    smaller), so a smaller cap gives a subset of a larger one's rows for the same seed; a text counts under
    its most frequent label. ``duplicates="keep"`` deals rows one by one instead (the leak that allows:
    ``grouping.KEEP_LEAK``). ``Splits.grouping`` reports duplicates, conflicting labels and drift.

    A dataset that carries its own parts (``meta["split_values"]``: a file's ``--split-column``) keeps them:
    its test rows stay the test rows, validation is carved from train when it has none (``validation /
    (train + validation)`` of each class, seeded, by groups), and ``samples_per_class`` caps train only. A
    text given in two parts is an error naming both lines, unless ``duplicates="keep"``.
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
    check_duplicates(duplicates)
    if max_tokens is not None or max_token_length is not None:
        dataset = dataset.with_texts([limit_tokens(text, max_tokens, max_token_length, long_tokens)
                                      for text in dataset.texts])
    from embedx.pipeline.keys import content_keys

    given = dataset.meta.get("split_values")
    lines = dataset.meta.get("lines")
    indices, grouping = split_rows(
        dataset.label_ids, dataset.label_names, content_keys(dataset.texts), seed=seed, fractions=fractions,
        samples_per_class=samples_per_class, duplicates=duplicates,
        given=np.asarray(given, dtype=object) if given is not None else None,
        column=dataset.meta.get("split_column", "split"), lines=lines,
        source=str(dataset.meta.get("source", {}).get("file", dataset.name)))
    settings = {"seed": int(seed), "train": train, "validation": validation, "test": test,
                "samples_per_class": samples_per_class, "max_tokens": max_tokens,
                "max_token_length": max_token_length, "long_tokens": long_tokens, "duplicates": duplicates,
                "given": dataset.meta.get("split_column") if given is not None else None}
    return Splits(dataset, indices["train"], indices["validation"], indices["test"], settings, grouping)


def check_duplicates(duplicates: object, option: str = "duplicates") -> None:
    if duplicates not in DUPLICATES:
        raise DatasetError(f"{option}={duplicates!r}: choose 'group' (each text's rows on one side of every split) "
                           "or 'keep' (rows dealt one by one; a repeated text can leak across parts)")


def split_rows(codes: np.ndarray, class_names: tuple[str, ...] | list[str], keys: np.ndarray, *, seed: int,
               fractions: np.ndarray, samples_per_class: int | None = None, duplicates: Duplicates = "group",
               given: np.ndarray | None = None, column: str = "split", lines: list[int] | np.ndarray | None = None,
               source: str = "input") -> tuple[dict[str, np.ndarray], Grouping]:
    """Row indices per part (each in a seeded random order) and the :class:`Grouping` report.

    The one splitting routine behind ``datasets.split`` and ``embedx train``: ``keys`` are the rows' content
    keys, ``given`` a split column's values (then ``fractions`` only sets the validation share carved from
    train), ``lines`` the input line of each row, for errors.
    """
    check_duplicates(duplicates)
    codes = np.asarray(codes, dtype=np.int64)
    groups = group_ids(keys)
    dealt_groups = np.arange(len(codes), dtype=np.int64) if duplicates == "keep" else groups
    rng = np.random.default_rng(seed)
    if given is not None:
        train, validation = float(fractions[0]), float(fractions[1])
        share = validation / (train + validation) if train + validation > 0 else 0.0
        parts = given_split(codes, given, seed=seed, validation_share=share, samples_per_class=samples_per_class,
                            column=column, keys=keys, lines=lines, duplicates=duplicates, source=source)
        part_fractions = None
    else:
        parts = _dealt(codes, len(class_names), dealt_groups, fractions, samples_per_class, rng)
        part_fractions = fractions
    part_of_row = np.full(len(codes), -1, dtype=np.int64)
    for p, name in enumerate(PARTS):
        part_of_row[parts[name]] = p
    grouping = summarise(codes, groups, part_of_row, PARTS, class_names, duplicates, part_fractions)
    indices = {part: rows[rng.permutation(len(rows))].astype(np.int64) for part, rows in parts.items()}
    return indices, grouping


def _dealt(codes: np.ndarray, n_classes: int, groups: np.ndarray, fractions: np.ndarray,
           samples_per_class: int | None, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Groups shuffled, each class capped at ``samples_per_class`` texts, then dealt whole by the fractions."""
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    counts = class_counts(codes, groups, n_groups, n_classes)
    order = rng.permutation(n_groups)
    order = _capped(order, majority(counts), samples_per_class)
    part_of_group = deal(counts, fractions, order)
    part_of_row = part_of_group[groups] if len(groups) else np.zeros(0, dtype=np.int64)
    return {part: np.flatnonzero(part_of_row == p).astype(np.int64) for p, part in enumerate(PARTS)}


def _capped(order: np.ndarray, label_of_group: np.ndarray, cap: int | None) -> np.ndarray:
    """``order`` keeping only the first ``cap`` groups of each class (all when ``cap`` is None)."""
    if cap is None or not len(order):
        return order
    labels = label_of_group[order]
    rank = np.zeros(len(order), dtype=np.int64)
    for c in np.unique(labels).tolist():
        where = labels == c
        rank[where] = np.arange(int(where.sum()))
    return order[rank < cap]


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
                samples_per_class: int | None = None, column: str = "split", keys: np.ndarray | None = None,
                lines: list[int] | np.ndarray | None = None, duplicates: Duplicates = "group",
                source: str = "input") -> dict[str, np.ndarray]:
    """Index arrays per part from a column of split names (``values``, one per row; see ``PART_SPELLINGS``).

    With no validation rows, a validation part of ``validation_share`` of each class's train texts is
    carved out, stratified, seeded and by groups of equal ``keys``. ``samples_per_class`` caps each class
    in train at that many texts (after carving). A text (equal key) given in two parts is an error naming
    both lines (``lines``, else row numbers), unless ``duplicates="keep"``.
    """
    check_duplicates(duplicates)
    codes = np.asarray(codes, dtype=np.int64)
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
    groups = group_ids(keys) if keys is not None else np.arange(len(codes), dtype=np.int64)
    if duplicates == "group":
        _refuse_cross_part(groups, part_of, lines, column, source)
    else:
        groups = np.arange(len(codes), dtype=np.int64)
    n_classes = int(codes.max()) + 1 if len(codes) else 0
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    if not len(index["validation"]):
        counts = class_counts(codes[index["train"]], groups[index["train"]], n_groups, n_classes)
        order = rng.permutation(np.unique(groups[index["train"]]))
        part_of_group = deal(counts, np.array([1.0 - validation_share, validation_share]), order)
        carved = part_of_group[groups[index["train"]]]
        index["train"], index["validation"] = index["train"][carved == 0], index["train"][carved == 1]
    if samples_per_class is not None:
        _check_positive("samples_per_class", samples_per_class)
        counts = class_counts(codes[index["train"]], groups[index["train"]], n_groups, n_classes)
        kept = _capped(rng.permutation(np.unique(groups[index["train"]])), majority(counts), samples_per_class)
        index["train"] = index["train"][np.isin(groups[index["train"]], kept)]
    return {part: np.sort(rows).astype(np.int64) for part, rows in index.items()}


def _refuse_cross_part(groups: np.ndarray, part_of: np.ndarray, lines: list[int] | np.ndarray | None, column: str,
                       source: str) -> None:
    """One error for the first text whose rows the split column puts in two parts, naming both lines."""
    if not len(groups):
        return
    seen = np.zeros((int(groups.max()) + 1, len(PARTS)), dtype=bool)
    seen[groups, part_of] = True
    clashing = np.flatnonzero(seen.sum(1) > 1)
    if not len(clashing):
        return
    first = int(np.flatnonzero(np.isin(groups, clashing))[0])
    other = int(np.flatnonzero((groups == groups[first]) & (part_of != part_of[first]))[0])
    named = " and ".join(f"{'line ' + str(lines[r]) if lines is not None else 'row ' + str(r + 1)} "
                         f"({PARTS[part_of[r]]})" for r in (first, other))
    raise DatasetError(f"{source}: split column {column!r} gives the same text in two parts, at {named} "
                       f"({len(clashing)} such text(s)); remove the copies, or pass --duplicates keep to allow the "
                       "leak (the head is then scored on texts it trained on)")
