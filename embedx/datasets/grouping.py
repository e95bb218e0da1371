"""Rows grouped by text: every copy of a text goes to one side of a split or fold, stratified as the groups allow.

Real data sets repeat texts (SMS spam: 315 duplicate rows of 4,837). Dealt row by row, a repeated text
lands in train and in test, and the head is scored on texts it saw with their labels. Here a *group* is
all rows with one content key (:func:`embedx.pipeline.keys.content_digest`, the key the feature cache
uses), and groups are dealt out whole: the semantics of scikit-learn's ``StratifiedGroupKFold``, with any
fractions. Numpy only, so the core splits datasets without scikit-learn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

Duplicates = Literal["group", "keep"]
DUPLICATES = ("group", "keep")

#: what ``duplicates="keep"`` allows, for help texts and errors
KEEP_LEAK = ("rows are split one by one, so a text given more than once can sit in train and in test (or in two "
             "folds): the head is then scored on texts it saw with their labels, which favours memorising heads")


@dataclass
class Grouping:
    """How a split treated repeated texts; ``as_dict()`` is what ``train --json`` and head.json show.

    Fields (all counts over the rows the split placed in a part; rows left out by a cap are not counted):

    - ``duplicates``: ``"group"`` (each text's rows on one side) or ``"keep"`` (rows dealt one by one);
    - ``rows``: rows in the three parts;
    - ``groups``: distinct texts (content keys) among them;
    - ``duplicate_rows``: ``rows - groups``, the rows repeating a text already counted;
    - ``conflicting_texts`` / ``conflicting_rows``: texts given with more than one label, and their rows
      (each such text stays on one side, its rows keep their labels);
    - ``cross_split_texts``: texts with rows in more than one part (0 by construction unless ``keep``);
    - ``drift``: per part, the largest difference over classes between a class's share of that part and its
      share of all rows (0.01 = one point); ``drift_max`` the largest of them;
    - ``warnings``: classes too small for a part, classes in test but not in train, conflicting labels.
    """

    duplicates: str = "group"
    rows: int = 0
    groups: int = 0
    duplicate_rows: int = 0
    conflicting_texts: int = 0
    conflicting_rows: int = 0
    cross_split_texts: int = 0
    drift: dict[str, float] = field(default_factory=dict)
    drift_max: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def group_ids(keys: np.ndarray | list[Any]) -> np.ndarray:
    """A group number 0..G-1 per row: rows with equal keys share one (numbered in sorted key order)."""
    keys = np.asarray(keys)
    if not len(keys):
        return np.zeros(0, dtype=np.int64)
    return np.unique(keys, return_inverse=True)[1].reshape(-1).astype(np.int64)


def class_counts(codes: np.ndarray, groups: np.ndarray, n_groups: int, n_classes: int) -> np.ndarray:
    """``[n_groups, n_classes]``: how many rows of each class each group holds."""
    counts = np.zeros((n_groups, n_classes), dtype=np.int64)
    np.add.at(counts, (groups, codes), 1)
    return counts


def majority(counts: np.ndarray) -> np.ndarray:
    """Each group's most frequent class (the lowest class number on a tie): the class a cap counts it under."""
    return counts.argmax(1).astype(np.int64)


def deal(counts: np.ndarray, fractions: np.ndarray, order: np.ndarray) -> np.ndarray:
    """A part number per group (-1 for groups not in ``order``), each class's parts near ``fractions``.

    Groups are taken in ``order`` (seeded, shuffled by the caller), the larger ones first, and each goes to the
    part whose classes are furthest below their exact share. With one row per text every part ends within one
    row of its exact share of each class; larger groups move that by at most their size. Parts with fraction 0
    get nothing.
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    part = np.full(len(counts), -1, dtype=np.int64)
    if not len(order):
        return part
    order = np.asarray(order, dtype=np.int64)
    sizes = counts[order].sum(1)
    order = order[np.argsort(-sizes, kind="stable")]
    target = fractions[:, None] * counts[order].sum(0)[None, :].astype(np.float64)
    current = np.zeros_like(target)
    single = sizes[np.argsort(-sizes, kind="stable")] == 1
    # groups of several rows (or classes) first, with the full vector; then single rows class by class in
    # plain Python, which gives the same result as interleaving them (classes do not interact) at a tenth the cost
    for g in order[~single].tolist():
        v = counts[g]
        present = np.flatnonzero(v)
        need = ((target - current)[:, present] * v[present]).sum(1) / v[present].sum()
        need[fractions <= 0] = -np.inf
        p = int(np.argmax(need))
        current[p] += v
        part[g] = p
    rest = order[single]
    if len(rest):
        cls = counts[rest].argmax(1)
        n_parts = len(fractions)
        open_parts = [p for p in range(n_parts) if fractions[p] > 0]
        for c in np.unique(cls).tolist():
            left = [float(target[p, c] - current[p, c]) for p in range(n_parts)]
            members = rest[cls == c].tolist()
            out = []
            for _ in members:
                p = max(open_parts, key=lambda q: (left[q], -q))
                left[p] -= 1.0
                out.append(p)
            part[members] = out
    return part


def drift(codes: np.ndarray, part_of_row: np.ndarray, names: tuple[str, ...] | list[str],
          n_classes: int) -> dict[str, float]:
    """Per part, max over classes of |class share in the part - class share over all placed rows|."""
    placed = part_of_row >= 0
    total = np.bincount(codes[placed], minlength=n_classes).astype(np.float64)
    if not total.sum():
        return {name: 0.0 for name in names}
    overall = total / total.sum()
    out = {}
    for p, name in enumerate(names):
        here = np.bincount(codes[part_of_row == p], minlength=n_classes).astype(np.float64)
        out[name] = round(float(np.abs(here / here.sum() - overall).max()), 4) if here.sum() else 0.0
    return out


def summarise(codes: np.ndarray, groups: np.ndarray, part_of_row: np.ndarray, names: tuple[str, ...],
              class_names: list[str] | tuple[str, ...], duplicates: str,
              fractions: np.ndarray | None = None) -> Grouping:
    """The :class:`Grouping` of a finished split: ``part_of_row`` numbers each row's part, -1 when left out."""
    n_classes = len(class_names)
    placed = part_of_row >= 0
    g = groups[placed]
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    counts = class_counts(codes[placed], g, n_groups, n_classes)
    present = counts.sum(1) > 0
    conflicting = (counts > 0).sum(1) > 1
    parts_per_group = np.zeros((n_groups, len(names)), dtype=bool)
    parts_per_group[g, part_of_row[placed]] = True
    report = Grouping(duplicates=duplicates, rows=int(placed.sum()), groups=int(present.sum()),
                      conflicting_texts=int(conflicting.sum()), conflicting_rows=int(counts[conflicting].sum()),
                      cross_split_texts=int((parts_per_group.sum(1) > 1).sum()),
                      drift=drift(codes, part_of_row, names, n_classes))
    report.duplicate_rows = report.rows - report.groups
    report.drift_max = max(report.drift.values(), default=0.0)
    report.warnings = _warnings(codes, groups, part_of_row, names, class_names, fractions, report)
    return report


def _warnings(codes: np.ndarray, groups: np.ndarray, part_of_row: np.ndarray, names: tuple[str, ...],
              class_names: list[str] | tuple[str, ...], fractions: np.ndarray | None, report: Grouping) -> list[str]:
    out = []
    if report.conflicting_texts:
        out.append(f"{report.conflicting_texts} text(s) carry more than one label ({report.conflicting_rows} rows); "
                   "each stays on one side of every split with its rows' labels")
    for c, name in enumerate(class_names):
        rows = (codes == c) & (part_of_row >= 0)
        if not rows.any():
            continue
        texts = len(np.unique(groups[rows]))
        where = {part: int(((part_of_row == p) & (codes == c)).sum()) for p, part in enumerate(names)}
        if "train" in where and "test" in where and where["test"] and not where["train"]:
            out.append(f"class {name!r} is in test ({where['test']} rows) but not in train: no head can learn it")
            continue
        if fractions is None:
            continue
        empty = [part for p, part in enumerate(names) if fractions[p] > 0 and not where[part]]
        if empty:
            out.append(f"class {name!r} has {texts} text(s): too few for every part, none in {' or '.join(empty)}")
    return out
