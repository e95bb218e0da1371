"""Logistic regression and linear SVM, the seeds' baselines; selection chooses C and whether to standardise.

In memory they use scikit-learn's exact solvers. When the training rows would exceed
``max_memory_mb`` (or ``solver="sgd"``), they stream: a standardisation pass over chunks, then
``SGDClassifier.partial_fit`` epochs over chunks, so the set never has to fit in memory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedx.heads.base import FitReport, Head, as_matrix
from embedx.heads.data import HeadData
from embedx.heads.metrics import accuracy
from embedx.heads.saved import (
    STATE_ARRAYS,
    STATE_CONFIG,
    ArraySpec,
    HeadStateError,
    check_classes,
    config_int,
    floats,
    ints,
    need,
    read_state,
    write_state,
)
from embedx.heads.standardize import Standardizer

SKLEARN = {"sklearn": "pip install scikit-learn==1.9.1"}


class LinearHead(Head):
    requires = SKLEARN
    streaming = True
    loss: str = "log_loss"

    def __init__(self, C: list[float] | None = None, solver: Literal["auto", "exact", "sgd"] = "auto",
                 max_memory_mb: int = 2048, epochs: int = 10, chunk_rows: int = 8192, seed: int = 0,
                 scale: bool | None = None, class_weight: Literal["none", "balanced"] = "none"):
        """``scale``: standardise each feature first. None (the default) lets selection choose: both are in
        the grid, since neither wins everywhere (SMS spam hashed counts, 300 per class: 0.93 raw vs 0.88
        standardised; 20 Newsgroups hashed: 0.700 raw vs 0.743 standardised); a head used on its own
        without selection stays unscaled. ``class_weight="balanced"`` weighs each class inversely to its
        frequency (``--grid class_weight=none|balanced`` lets selection choose)."""
        self.Cs = C or [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]
        self.solver, self.max_memory_mb, self.epochs, self.chunk_rows, self.seed, self.scale = (
            solver, max_memory_mb, epochs, chunk_rows, seed, scale)
        self.class_weight = class_weight
        self.scaler = Standardizer()
        self.model: Any = None
        self.model_C = self.Cs[0]
        self.n_classes = 0
        self._start: tuple[np.ndarray, np.ndarray] | None = None  # coefficients to start the exact solver from

    def search_space(self) -> dict[str, list]:
        """Scaling on or off (unless fixed with ``scale=``), then C: scale first, so C varies fastest and each
        fold's next fit warm-starts from the same scaling's previous C."""
        space: dict[str, list] = {"scale": [False, True]} if self.scale is None else {}
        return {**space, **({"C": [[c] for c in self.Cs]} if len(self.Cs) > 1 else {})}

    def fit(self, train: HeadData, validation: HeadData | None) -> FitReport:
        """With one C, fit it; with several, pick the best on ``validation`` (the single-split protocol)."""
        self.n_classes = len(train.classes)
        streaming = self.solver == "sgd" or (self.solver == "auto" and train.nbytes > self.max_memory_mb << 20)
        if self.scale:
            self.scaler.fit_chunks(X for X, _ in train.chunks(self.chunk_rows))
        else:
            self.scaler.identity(train.row_shape)
        if len(self.Cs) > 1 and (validation is None or not len(validation)):
            raise ValueError(f"{self.id}: choosing among C={self.Cs} needs validation rows")
        X_val = self.scaler.transform(validation.array()) if len(self.Cs) > 1 else None  # type: ignore[union-attr]
        results = {}
        for C in sorted(self.Cs):  # ascending, each fit starting from the previous solution
            model = self._fit_streaming(train, C) if streaming else self._fit_exact(train, C)
            results[C] = (accuracy(validation.y, model.predict(X_val))  # type: ignore[union-attr]
                          if X_val is not None else None, model)
            self._start = (model.coef_, model.intercept_)
        best = max(self.Cs, key=lambda c: (results[c][0] or 0.0, -abs(np.log10(c))))
        self.model, self.model_C = results[best][1], best
        extra = {"validation_accuracy_by_C": {str(c): results[c][0] for c in self.Cs}} if X_val is not None else {}
        return FitReport(chosen={"C": best, "solver": "sgd" if streaming else "exact"}, extra=extra)

    def _exact_model(self, C: float) -> Any:
        """The scikit-learn estimator the exact solver fits (each linear head says which)."""
        raise NotImplementedError

    def _fit_exact(self, train: HeadData, C: float):
        from threadpoolctl import threadpool_limits

        X = self.scaler.transform(train.array())
        model = self._exact_model(C)
        start = self._start
        if start is not None and "warm_start" in model.get_params() and start[0].shape[1] == X.shape[1] and \
                len(start[0]) == (1 if self.n_classes == 2 else self.n_classes):
            # the problem is convex: the start changes how long the solver runs, not where it ends (within tol)
            model.set_params(warm_start=True)
            model.coef_, model.intercept_ = start[0].copy(), start[1].copy()
        # one BLAS thread: the solvers' products are small, and on 2 cores a second BLAS thread made
        # lbfgs 15x slower (ELMo's 1024-d tweets vectors, 850 rows, C=100: 3.7 s vs 0.24 s, same iterations)
        with threadpool_limits(1):
            model.fit(X, train.y)
        return model

    def warm_from(self, other: Head) -> None:
        model = getattr(other, "model", None)
        if type(other) is type(self) and type(model).__name__ != "SGDClassifier" and hasattr(model, "coef_"):
            self._start = (model.coef_, model.intercept_)  # type: ignore[union-attr]

    _weights: dict[int, float] | None = None  # class -> weight for the streaming solver ("balanced")

    def _fit_streaming(self, train: HeadData, C: float):
        if self.class_weight == "balanced":
            counts = np.bincount(train.y, minlength=self.n_classes)
            self._weights = {c: len(train.y) / (np.count_nonzero(counts) * n) for c, n in enumerate(counts) if n}
        model = self._streaming_model(C, len(train))
        classes = np.arange(self.n_classes)
        rng = np.random.default_rng(self.seed)
        starts = np.arange(0, len(train), self.chunk_rows)
        for _ in range(self.epochs):
            for start in rng.permutation(starts):  # chunks in a new order each epoch, rows shuffled within
                part = train.subset(np.arange(start, min(start + self.chunk_rows, len(train))))
                inner = rng.permutation(len(part))
                model.partial_fit(self.scaler.transform(part.array())[inner], part.y[inner], classes=classes)
        return model

    def _streaming_model(self, C: float, n: int):
        from sklearn.linear_model import SGDClassifier

        # alpha is SGD's L2 strength per sample: the C of the exact solvers maps to 1 / (C * n). partial_fit
        # cannot compute "balanced" weights from one chunk, so they come from all training labels (_weights)
        return SGDClassifier(loss=self.loss, alpha=1.0 / (C * n), learning_rate="optimal", random_state=self.seed,
                             class_weight=self._weights)

    @property
    def _sklearn_weight(self) -> str | None:
        return "balanced" if self.class_weight == "balanced" else None

    def predict_proba(self, data: HeadData | np.ndarray) -> np.ndarray:
        X = self.scaler.transform(as_matrix(data))
        if hasattr(self.model, "predict_proba") and self.loss == "log_loss":
            proba = self.model.predict_proba(X)
        else:  # a margin classifier: softmax of decision values, good enough to rank
            scores = self.model.decision_function(X)
            scores = np.column_stack([-scores, scores]) if scores.ndim == 1 else scores
            scores = np.exp(scores - scores.max(1, keepdims=True))
            proba = scores / scores.sum(1, keepdims=True)
        full = np.zeros((len(X), self.n_classes))
        full[:, self.model.classes_] = proba
        return full

    def save(self, directory: Path) -> None:
        """Scaler, coefficients, intercepts and classes as arrays; the estimator is rebuilt from them."""
        kind = "sgd" if type(self.model).__name__ == "SGDClassifier" else "exact"
        write_state(directory, {"mean": self.scaler.mean, "scale": self.scaler.scale, "coef": self.model.coef_,
                                "intercept": self.model.intercept_, "classes": self.model.classes_},
                    {"estimator": kind, "n_classes": self.n_classes, "C": self.model_C})

    def restore(self, directory: Path) -> None:
        arrays, config = read_state(directory, lambda config: self._expected(config, directory))
        mean, scale, coef, intercept, classes = need(arrays, directory, "mean", "scale", "coef", "intercept",
                                                     "classes")
        check_classes(classes, int(config["n_classes"]), directory)
        if len(coef) != (1 if len(classes) == 2 else len(classes)):
            raise HeadStateError(f"{directory / STATE_ARRAYS}: member 'coef' has {len(coef)} rows for "
                                 f"{len(classes)} classes; save the head again")
        self.scaler.load({"mean": mean, "scale": scale})
        C = float(config.get("C", 1.0))
        model = self._streaming_model(C, 1) if config.get("estimator") == "sgd" else self._exact_model(C)
        model.coef_, model.intercept_ = coef.astype(np.float64), intercept.astype(np.float64)
        model.classes_, model.n_features_in_ = classes.astype(np.int64), coef.shape[1]
        self.model, self.n_classes, self.model_C = model, int(config["n_classes"]), C

    @staticmethod
    def _expected(config: dict, directory: Path) -> dict[str, ArraySpec]:
        """The arrays a linear head of ``config`` holds: ``d`` features, ``r`` coefficient rows, ``m`` classes."""
        config_int(config, "n_classes", directory, low=2)
        C = config.get("C", 1.0)
        if not isinstance(C, (int, float)) or isinstance(C, bool) or not np.isfinite(C) or C <= 0:
            raise HeadStateError(f"{directory / STATE_CONFIG}: 'C' is {str(C)[:40]!r}, expected a positive number; "
                                 "save the head again")
        return {"mean": floats("d"), "scale": floats("d"), "coef": floats("r", "d"), "intercept": floats("r"),
                "classes": ints("m")}


class LogisticRegressionHead(LinearHead):
    id = "logreg"
    description = ("Logistic regression; C and scaling (standardised or raw) chosen by selection; streams with SGD "
                   "when too big for memory")
    loss = "log_loss"

    def _exact_model(self, C: float):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=C, max_iter=2000, random_state=self.seed, class_weight=self._sklearn_weight)


class LinearSVMHead(LinearHead):
    id = "linear-svm"
    description = ("Linear SVM (hinge loss); C and scaling (standardised or raw) chosen by selection; streams with "
                   "SGD when too big for memory")
    loss = "hinge"

    def __init__(self, C: list[float] | None = None, solver: Literal["auto", "exact", "sgd"] = "auto",
                 max_memory_mb: int = 2048, epochs: int = 10, chunk_rows: int = 8192, seed: int = 0,
                 scale: bool | None = None, class_weight: Literal["none", "balanced"] = "none"):
        # 100 was added when the committed comparison chose 10, the old top, for three feature sets (SMS spam);
        # liblinear stops at max_iter there either way (ELMo's 1024-d vectors: 0.5 s per fit at C=10 and at 100)
        super().__init__(C or [0.001, 0.01, 0.1, 1.0, 10.0, 100.0], solver, max_memory_mb, epochs, chunk_rows, seed,
                         scale, class_weight)

    def _exact_model(self, C: float):
        from sklearn.svm import LinearSVC

        return LinearSVC(C=C, max_iter=2000, random_state=self.seed, class_weight=self._sklearn_weight)
