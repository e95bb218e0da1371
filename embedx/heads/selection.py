"""How a head's settings are chosen: cross-validation with a refit by default, one validation split on request.

The default follows SentEval's protocol. Every candidate setting (the ``--grid`` combinations times
the head's own search space, such as logistic regression's C values) is scored by stratified k-fold
cross-validation on train+validation together (k=5, fewer when a class has fewer texts). All rows of
one text (one content key) fall in one fold, so no fold is scored on a text it trained on. The best mean
accuracy wins (``metric="macro_f1"``: the best mean macro-F1); the head is then refit on all
train+validation rows with that setting, and scored once on test. Heads with early stopping train
each fold with early stopping and are refit for the median of the folds' best epochs.
``selection="validation"`` is the cheaper single split: each candidate is trained on train and scored on
validation, and the winner is kept as it is, without a refit.

A choice at either end of a grid of three or more values is flagged, since the best setting may lie
beyond it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from embedx.contract.errors import OptionError
from embedx.heads.base import FitReport, Head
from embedx.heads.metrics import scores

SelectionMethod = Literal["cv", "validation"]
METHODS = ("cv", "validation")
Metric = Literal["accuracy", "macro_f1"]
METRICS = {"accuracy": "accuracy", "macro-f1": "macro_f1", "macro_f1": "macro_f1"}  # spelling -> score key


@dataclass
class Protocol:
    """How settings are chosen: ``selection``, ``folds`` and ``seed``, and the score (``metric``) that wins."""

    selection: SelectionMethod = "cv"
    folds: int = 5
    seed: int = 0
    metric: Metric = "accuracy"

    def __post_init__(self) -> None:
        if self.selection not in METHODS:
            raise OptionError(f"--selection {self.selection!r}: choose {' or '.join(METHODS)}")
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2:
            raise OptionError(f"--folds {self.folds!r}: use an integer of at least 2")
        if self.metric not in METRICS:
            raise OptionError(f"--metric {self.metric!r}: choose accuracy or macro-f1")
        self.metric = METRICS[self.metric]  # type: ignore[assignment]  # one of the two keys


@dataclass
class Selection:
    """The fitted head and how it was chosen."""

    head: Head
    report: FitReport
    options: dict[str, Any]
    chosen: dict[str, Any]
    selection_scores: dict[str, float]
    candidates: list[dict[str, Any]]
    flags: list[str]
    method: str
    folds: np.ndarray | None = None  # fold of each train+validation row (cv), aligned with ``pool``
    pool: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    #: per-epoch curves with held-out values: the final fit's, or the first fold's after a refit
    curves: dict[str, list[float]] = field(default_factory=dict)
    #: cross-validation folds: largest difference of a class's share of a fold from its share of the pool
    fold_drift: float | None = None


def stratified_folds(y: np.ndarray, k: int, seed: int, groups: np.ndarray | None = None) -> np.ndarray:
    """Fold number 0..k-1 per row, each group's rows (equal ``groups`` values) in one fold.

    Groups are shuffled with ``seed`` and dealt whole, each to the fold whose classes are furthest below
    their exact share (StratifiedGroupKFold semantics, :func:`embedx.datasets.grouping.deal`). Without
    ``groups`` each row is its own group: every fold then holds each class within one row of its share.
    """
    from embedx.datasets.grouping import class_counts, deal, group_ids

    y = np.asarray(y, dtype=np.int64)
    g = np.arange(len(y), dtype=np.int64) if groups is None else group_ids(groups)
    n_groups = int(g.max()) + 1 if len(g) else 0
    counts = class_counts(y, g, n_groups, int(y.max()) + 1 if len(y) else 0)
    order = np.random.default_rng(seed).permutation(n_groups)
    return deal(counts, np.full(k, 1.0 / k), order)[g]


def texts_per_class(y: np.ndarray, groups: np.ndarray | None, classes: list[str]) -> dict[str, int]:
    """How many distinct texts (groups) each class present in ``y`` has: what bounds the number of folds."""
    out = {}
    for c in np.unique(y).tolist():
        rows = y == c
        out[classes[c]] = int(rows.sum()) if groups is None else len(np.unique(np.asarray(groups)[rows]))
    return out


def display(value: Any) -> Any:
    """A one-element list option (``C=[0.1]``) shown as its value."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def choose_and_fit(make: Callable[[dict[str, Any]], Head], base: dict[str, Any], grid: dict[str, list[Any]],
                   data: Any, train: np.ndarray, validation: np.ndarray, protocol: Protocol,
                   groups: np.ndarray | None = None) -> Selection:
    """Choose among the candidate settings with ``protocol``, then return the final fitted head.

    ``make(options)`` builds a head; ``data.subset(index)`` gives rows; ``train`` and ``validation`` index it.
    ``groups`` (one value per row of ``data``, such as its content key) keeps each text's rows in one
    cross-validation fold; without it every row is its own text.
    """
    probe = make(base)
    space = {k: v for k, v in probe.search_space().items() if k not in grid}
    axes = {**{k: list(v) for k, v in grid.items()}, **space}
    keys = list(axes)
    candidates = [dict(base, **dict(zip(keys, values, strict=True))) for values in itertools.product(*axes.values())]
    needs_epochs = type(probe).refit_options is not Head.refit_options
    n_classes = len(data.classes)
    if protocol.selection == "validation":
        return _single_split(make, candidates, axes, data, train, validation, n_classes, protocol)
    if len(candidates) == 1 and not needs_epochs:  # nothing to choose: train on all train+validation rows
        pool = np.concatenate([train, validation]).astype(np.int64)
        head = make(candidates[0])
        report = head.fit(data.subset(pool), None)
        return Selection(head, report, candidates[0], dict(report.chosen), {}, [], [],
                         f"nothing to choose; trained on all train+validation rows ({len(pool)})", None, pool)
    return _cross_validate(make, candidates, axes, data, train, validation, n_classes, protocol, groups)


def _single_split(make, candidates, axes, data, train, validation, n_classes, protocol) -> Selection:
    if len(validation) == 0 and (len(candidates) > 1 or _early_stopping(make(candidates[0]))):
        raise OptionError("--selection validation needs validation rows: give a validation fraction above 0 "
                          "(or use the default cross-validation)")
    train_data = data.subset(train)
    val_data = data.subset(validation) if len(validation) else None
    tried: list[dict[str, Any]] = []
    best: Any = None
    for combo in candidates:
        head = make(combo)
        report = head.fit(train_data, val_data)
        val = scores(val_data.y, head.predict(val_data), n_classes) if val_data is not None else {}
        tried.append({"options": _shown(combo, axes), "validation": val})
        if best is None or val.get(protocol.metric, 0.0) > best[2].get(protocol.metric, 0.0):
            best = (head, report, val, combo)
    head, report, val, combo = best
    only = len(candidates) == 1
    method = (f"trained on train ({len(train)} rows) with the given settings" if only else
              f"{len(candidates)} settings trained on train ({len(train)} rows) and compared on validation "
              f"({len(validation)} rows) by {_metric_name(protocol)}; the best kept as trained, no refit")
    if report.chosen.get("epochs") is not None and val_data is not None:
        method += f"; early stopping on validation {report.extra.get('monitor', 'accuracy')}"
    return Selection(head, report, combo, _chosen(report, combo, axes), val, tried if not only else [],
                     _flags(combo, axes, [report]), method, None, np.concatenate([train, validation]),
                     report.curves)


def _cross_validate(make, candidates, axes, data, train, validation, n_classes, protocol, groups) -> Selection:
    pool = np.concatenate([train, validation]).astype(np.int64)
    y = data.subset(pool).y
    pool_groups = None if groups is None else np.asarray(groups)[pool]
    texts = texts_per_class(y, pool_groups, list(data.classes))
    smallest = min(texts, key=lambda name: texts[name])
    k = min(protocol.folds, texts[smallest])
    if k < 2:
        raise OptionError(f"cross-validation needs at least 2 train+validation texts per class; class {smallest!r} "
                          f"has {texts[smallest]}. Use --selection validation, or more rows of that class")
    folds = stratified_folds(y, k, protocol.seed, pool_groups)
    tried, best = [], None
    previous: list[Head | None] = [None] * k  # each fold's last fitted head: a warm start for the next candidate
    for combo in candidates:
        fold_scores, reports = [], []
        for f in range(k):
            head = make(combo)
            if previous[f] is not None:
                head.warm_from(previous[f])
            previous[f] = head
            fit_rows, held = pool[folds != f], pool[folds == f]
            held_data = data.subset(held)
            reports.append(head.fit(data.subset(fit_rows), held_data))
            fold_scores.append(scores(held_data.y, head.predict(held_data), n_classes))
        mean = {m: float(np.mean([s[m] for s in fold_scores])) for m in fold_scores[0]}
        mean["accuracy_std"] = float(np.std([s["accuracy"] for s in fold_scores]))
        tried.append({"options": _shown(combo, axes), "cv": mean, "reports": reports, "combo": combo})
    best = max(tried, key=lambda t: (t["cv"][protocol.metric], -_edge_distance(t["combo"], axes)))
    probe = make(best["combo"])
    refit = probe.refit_options(best["reports"])
    head = make(dict(best["combo"], **refit))
    report = head.fit(data.subset(pool), None)
    chosen = _chosen(report, best["combo"], axes)
    if refit.get("epochs") is not None:
        chosen["epochs"] = refit["epochs"]
        chosen["fold_best_epochs"] = [r.chosen.get("epochs") for r in best["reports"]]
    grouped = "" if pool_groups is None else f", each text's rows in one fold ({len(np.unique(pool_groups))} texts)"
    method = (f"{len(candidates)} setting(s) scored by stratified {k}-fold cross-validation on train+validation "
              f"({len(pool)} rows{grouped}), best mean {_metric_name(protocol)}; refit on all {len(pool)} rows")
    if refit.get("epochs") is not None:
        method += (f" for the median of the folds' best epochs (early stopping on held-out "
                   f"{best['reports'][0].extra.get('monitor', 'accuracy')})")
    shown = [{"options": t["options"], "cv": t["cv"]} for t in tried]
    curves = dict(best["reports"][0].curves) if best["reports"][0].curves else {}
    from embedx.datasets.grouping import drift

    shares = drift(y, folds, [str(f) for f in range(k)], n_classes)
    return Selection(head, report, best["combo"], chosen, best["cv"], shown if len(candidates) > 1 else [],
                     _flags(best["combo"], axes, best["reports"]), method, folds, pool, curves,
                     max(shares.values(), default=0.0))


def _metric_name(protocol: Protocol) -> str:
    return "macro-F1" if protocol.metric == "macro_f1" else "accuracy"


def _early_stopping(head: Head) -> bool:
    return type(head).refit_options is not Head.refit_options


def _shown(combo: dict[str, Any], axes: dict[str, list[Any]]) -> dict[str, Any]:
    return {k: display(combo[k]) for k in axes}


def _chosen(report: FitReport, combo: dict[str, Any], axes: dict[str, list[Any]]) -> dict[str, Any]:
    return {**report.chosen, **_shown(combo, axes)}


def _edge_distance(combo: dict[str, Any], axes: dict[str, list[Any]]) -> float:
    """How far a candidate sits from the middle of its grids: ties go to the more central setting."""
    total = 0.0
    for key, values in axes.items():
        index = values.index(combo[key])
        total += abs(index - (len(values) - 1) / 2)
    return total


def _flags(combo: dict[str, Any], axes: dict[str, list[Any]], reports: list[FitReport]) -> list[str]:
    flags = []
    for key, values in axes.items():
        if len(values) < 3:
            continue
        index = values.index(combo[key])
        if index in (0, len(values) - 1):
            shown = [display(v) for v in values]
            where = _end(shown, index)
            flags.append(f"{key}={display(combo[key])} is the {where} value of its grid {shown}: the best "
                         "setting may lie beyond it; widen the grid")
    capped = [r for r in reports if r.chosen.get("epochs") is not None and r.extra.get("max_epochs")
              and r.chosen["epochs"] >= r.extra["max_epochs"]]
    if capped:
        flags.append(f"the best epoch was the last one allowed (epochs={capped[0].extra['max_epochs']}) in "
                     f"{len(capped)} of {len(reports)} fit(s): raise epochs")
    return flags


def _end(values: list[Any], index: int) -> str:
    try:
        numeric = [float(v) for v in values]
    except (TypeError, ValueError):
        return "first" if index == 0 else "last"
    return "lowest" if numeric[index] == min(numeric) else "highest" if numeric[index] == max(numeric) else \
        ("first" if index == 0 else "last")
