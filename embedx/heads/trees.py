"""Random forest and gradient boosting on cached vectors: the seeds' non-linear baselines (in memory).

Saved as plain arrays: every tree's node table (children, feature, threshold, leaf values) goes
into ``state.npz``, and the scikit-learn estimator is rebuilt from them on load, so loading a
saved head never unpickles anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedx.heads.base import FitReport, Head, as_matrix
from embedx.heads.data import HeadData
from embedx.heads.linear import SKLEARN
from embedx.heads.metrics import accuracy
from embedx.heads.saved import (
    STATE_ARRAYS,
    ArraySpec,
    HeadStateError,
    check_classes,
    config_int,
    floats,
    ints,
    need,
    read_state,
    records,
    write_state,
)


class TreeHead(Head):
    requires = SKLEARN

    def __init__(self, n_estimators: int = 200, max_depth: int | None = None, seed: int = 0, n_jobs: int = 2,
                 class_weight: Literal["none", "balanced"] = "none"):
        """``class_weight="balanced"`` weighs each class inversely to its frequency (scikit-learn's option)."""
        self.n_estimators, self.max_depth, self.seed, self.n_jobs = n_estimators, max_depth, seed, n_jobs
        self.class_weight = class_weight
        self.model: Any = None
        self.n_classes = 0

    @property
    def _sklearn_weight(self) -> str | None:
        return "balanced" if self.class_weight == "balanced" else None

    # each kind of tree ensemble says how to build its estimator and how its fitted state is saved and rebuilt
    def _model(self) -> Any:
        raise NotImplementedError

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        raise NotImplementedError

    def _rebuild(self, arrays: dict[str, np.ndarray], config: dict[str, Any], classes: np.ndarray, n_features: int,
                 directory: Path) -> Any:
        raise NotImplementedError

    def fit(self, train: HeadData, validation: HeadData | None) -> FitReport:
        self.n_classes = len(train.classes)
        self.model = self._model()
        self.model.fit(as_matrix(train), train.y)
        extra = {} if validation is None or not len(validation) else {
            "validation_accuracy": accuracy(validation.y, self.predict(validation))}
        return FitReport(extra=extra)

    def predict_proba(self, data: HeadData | np.ndarray) -> np.ndarray:
        X = as_matrix(data)
        full = np.zeros((len(X), self.n_classes))
        full[:, self.model.classes_] = self.model.predict_proba(X)
        return full

    def save(self, directory: Path) -> None:
        arrays, config = self._state()
        write_state(directory, arrays | {"classes": self.model.classes_},
                    config | {"n_classes": self.n_classes, "n_features": int(self.model.n_features_in_)})

    def restore(self, directory: Path) -> None:
        def expected(config: dict) -> dict[str, ArraySpec]:
            config_int(config, "n_classes", directory, low=2)
            config_int(config, "n_features", directory, low=1)
            return {"classes": ints("m")} | self._expected(config, directory)

        arrays, config = read_state(directory, expected)
        (classes,) = need(arrays, directory, "classes")
        self.n_classes = int(config["n_classes"])
        check_classes(classes, self.n_classes, directory)
        self.model = self._model()
        self._rebuild(arrays, config, classes.astype(np.int64), int(config["n_features"]), directory)

    def _expected(self, config: dict, directory: Path) -> dict[str, ArraySpec]:
        """The arrays besides ``classes`` (``m`` of them) this kind of ensemble saves."""
        raise NotImplementedError


def _records(table: np.ndarray, dtype: np.dtype, directory: Path) -> np.ndarray:
    """``table`` in scikit-learn's exact record layout (saving drops its padding); same fields required."""
    if table.dtype.names != dtype.names:
        raise HeadStateError(f"{directory}: tree node fields {table.dtype.names} are not scikit-learn's "
                             f"{dtype.names}; save the head again")
    out = np.zeros(len(table), dtype=dtype)
    for name in dtype.names or ():
        out[name] = table[name]
    return out


def _offsets(offsets: np.ndarray, nodes: int, trees: int, directory: Path) -> list[tuple[int, int]]:
    """Each tree's ``[start, stop)`` in the node table: ``trees + 1`` ascending offsets from 0 to ``nodes``."""
    if len(offsets) != trees + 1 or offsets[0] != 0 or offsets[-1] != nodes or np.any(np.diff(offsets) < 1):
        raise HeadStateError(f"{directory / STATE_ARRAYS}: member 'offsets' does not split {nodes:,} nodes into "
                             f"{trees:,} trees; save the head again")
    return [(int(a), int(b)) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]


def _check_links(leaf: np.ndarray, left: np.ndarray, right: np.ndarray, feature: np.ndarray, n_features: int,
                 parts: list[tuple[int, int]], directory: Path) -> None:
    """Every split node's children lie later in its own tree and its feature exists; leaves are leaves.

    The predictors walk these tables in compiled code without bounds checks: a child index outside the
    tree reads memory that is not the tree's, and one pointing back loops for ever."""
    index = np.arange(len(leaf), dtype=np.int64)
    stop = np.empty(len(leaf), dtype=np.int64)
    for start, end in parts:
        index[start:end] -= start
        stop[start:end] = end - start
    split = ~leaf
    left, right, feature = left.astype(np.int64), right.astype(np.int64), feature.astype(np.int64)
    bad = split & ((left <= index) | (left >= stop) | (right <= index) | (right >= stop) | (feature < 0)
                   | (feature >= n_features))
    if bad.any():
        raise HeadStateError(f"{directory / STATE_ARRAYS}: member 'nodes': node {int(np.flatnonzero(bad)[0]):,} "
                             "links outside its tree or to a feature the head does not have; save the head again")


def _stack(tables: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Many per-tree tables as one array plus the offsets where each tree starts."""
    offsets = np.cumsum([0] + [len(t) for t in tables]).astype(np.int64)
    return np.concatenate(tables), offsets


class RandomForestHead(TreeHead):
    id = "random-forest"
    description = "Random forest (scikit-learn)"

    def _model(self):
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                      random_state=self.seed, n_jobs=self.n_jobs, class_weight=self._sklearn_weight)

    def _state(self):
        states = [tree.tree_.__getstate__() for tree in self.model.estimators_]
        nodes, node_offsets = _stack([s["nodes"] for s in states])
        values, _ = _stack([s["values"] for s in states])
        return ({"nodes": nodes, "values": values, "offsets": node_offsets,
                 "max_depth": np.array([s["max_depth"] for s in states], dtype=np.int64)}, {})

    def _expected(self, config: dict, directory: Path) -> dict[str, ArraySpec]:
        return {"nodes": records("N"), "values": floats("N", 1, "m"), "offsets": ints(None), "max_depth": ints("T")}

    def _rebuild(self, arrays, config, classes, n_features, directory):
        from sklearn.tree import DecisionTreeClassifier
        from sklearn.tree._tree import NODE_DTYPE, TREE_LEAF, Tree

        nodes, values, offsets, depths = need(arrays, directory, "nodes", "values", "offsets", "max_depth")
        nodes = _records(nodes, NODE_DTYPE, directory)
        if values.ndim != 3 or values.shape[2] != len(classes) or len(values) != len(nodes):
            raise HeadStateError(f"{directory}: tree arrays of an unexpected layout; save the head again")
        parts = _offsets(offsets, len(nodes), len(depths), directory)
        leaf = nodes["left_child"] == TREE_LEAF
        _check_links(leaf, nodes["left_child"], nodes["right_child"], nodes["feature"], n_features, parts, directory)
        if np.any(depths < 0):
            raise HeadStateError(f"{directory / STATE_ARRAYS}: member 'max_depth' holds a negative depth; "
                                 "save the head again")
        trees = []
        for i in range(len(depths)):
            part = slice(*parts[i])
            tree = Tree(n_features, np.array([len(classes)], dtype=np.intp), 1)
            tree.__setstate__({"max_depth": int(depths[i]), "node_count": part.stop - part.start,
                               "nodes": np.ascontiguousarray(nodes[part]),
                               "values": np.ascontiguousarray(values[part], dtype=np.float64)})
            estimator = DecisionTreeClassifier(random_state=self.seed)
            estimator.tree_, estimator.classes_, estimator.n_classes_ = tree, classes, len(classes)
            estimator.n_outputs_, estimator.n_features_in_ = 1, n_features
            trees.append(estimator)
        self.model.estimators_, self.model.classes_, self.model.n_classes_ = trees, classes, len(classes)
        self.model.n_outputs_, self.model.n_features_in_ = 1, n_features


class GradientBoostingHead(TreeHead):
    id = "gradient-boosting"
    description = "Histogram gradient boosting (scikit-learn), early stopping on a held-out part of train"

    def _model(self):
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=self.n_estimators, max_depth=self.max_depth,
                                              early_stopping=True, random_state=self.seed,
                                              class_weight=self._sklearn_weight)

    def _state(self):
        predictors = [p for iteration in self.model._predictors for p in iteration]
        if any(p.raw_left_cat_bitsets.size or p.binned_left_cat_bitsets.size for p in predictors):
            raise HeadStateError("categorical splits cannot be saved (embedx heads train on numeric vectors only)")
        nodes, offsets = _stack([p.nodes for p in predictors])
        return ({"nodes": nodes, "offsets": offsets, "baseline": self.model._baseline_prediction},
                {"trees_per_iteration": int(self.model.n_trees_per_iteration_)})

    def _expected(self, config: dict, directory: Path) -> dict[str, ArraySpec]:
        per = config_int(config, "trees_per_iteration", directory, low=1, high=config_int(
            config, "n_classes", directory, low=2))
        return {"nodes": records("N"), "offsets": ints(None), "baseline": floats(1, per)}

    def _rebuild(self, arrays, config, classes, n_features, directory):
        from sklearn.ensemble._hist_gradient_boosting.binning import _BinMapper
        from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE, X_BITSET_INNER_DTYPE
        from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

        nodes, offsets, baseline = need(arrays, directory, "nodes", "offsets", "baseline")
        per = int(config["trees_per_iteration"])
        nodes = _records(nodes, PREDICTOR_RECORD_DTYPE, directory)
        if per < 1 or (len(offsets) - 1) % per:
            raise HeadStateError(f"{directory}: boosting arrays of an unexpected layout; save the head again")
        parts = _offsets(offsets, len(nodes), len(offsets) - 1, directory)
        if np.any(nodes["is_categorical"] != 0):  # categorical splits would index bitsets that are not saved
            raise HeadStateError(f"{directory / STATE_ARRAYS}: member 'nodes' holds categorical splits, which "
                                 "embedx heads never save; save the head again")
        _check_links(nodes["is_leaf"] != 0, nodes["left"], nodes["right"], nodes["feature_idx"], n_features, parts,
                     directory)
        no_bitsets = np.zeros((0, 8), dtype=X_BITSET_INNER_DTYPE)
        flat = [TreePredictor(np.ascontiguousarray(nodes[a:b]), no_bitsets, no_bitsets) for a, b in parts]
        model = self.model
        model._predictors = [flat[i:i + per] for i in range(0, len(flat), per)]
        model.classes_, model.n_trees_per_iteration_, model.n_features_in_ = classes, per, n_features
        model._baseline_prediction = baseline.astype(np.float64)
        model._loss = model._get_loss(sample_weight=None)
        model._preprocessor, model.is_categorical_ = None, None
        mapper = _BinMapper()  # numeric features only: no known categories to look up
        mapper.is_categorical_, mapper.bin_thresholds_ = np.zeros(n_features, dtype=bool), []
        model._bin_mapper = mapper
