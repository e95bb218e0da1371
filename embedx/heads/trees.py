"""Random forest and gradient boosting on cached vectors: the seeds' non-linear baselines (in memory)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from embedx.heads.base import FitReport, Head, as_matrix
from embedx.heads.data import HeadData
from embedx.heads.linear import SKLEARN
from embedx.heads.metrics import accuracy


class TreeHead(Head):
    requires = SKLEARN

    def __init__(self, n_estimators: int = 200, max_depth: int | None = None, seed: int = 0, n_jobs: int = 2):
        self.n_estimators, self.max_depth, self.seed, self.n_jobs = n_estimators, max_depth, seed, n_jobs
        self.model = None
        self.n_classes = 0

    def fit(self, train: HeadData, validation: HeadData) -> FitReport:
        self.n_classes = len(train.classes)
        self.model = self._model()
        self.model.fit(as_matrix(train), train.y)
        return FitReport(extra={"validation_accuracy": accuracy(validation.y, self.predict(validation))})

    def predict_proba(self, data: HeadData | np.ndarray) -> np.ndarray:
        X = as_matrix(data)
        full = np.zeros((len(X), self.n_classes))
        full[:, self.model.classes_] = self.model.predict_proba(X)
        return full

    def save(self, directory: Path) -> None:
        with open(directory / "model.pkl", "wb") as handle:
            pickle.dump({"model": self.model, "n_classes": self.n_classes}, handle)

    def restore(self, directory: Path) -> None:
        with open(directory / "model.pkl", "rb") as handle:  # written by embedx itself (see save)
            saved = pickle.load(handle)
        self.model, self.n_classes = saved["model"], saved["n_classes"]


class RandomForestHead(TreeHead):
    id = "random-forest"
    description = "Random forest (scikit-learn)"

    def _model(self):
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=self.n_estimators, max_depth=self.max_depth,
                                      random_state=self.seed, n_jobs=self.n_jobs)


class GradientBoostingHead(TreeHead):
    id = "gradient-boosting"
    description = "Histogram gradient boosting (scikit-learn), early stopping on a held-out part of train"

    def _model(self):
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=self.n_estimators, max_depth=self.max_depth,
                                              early_stopping=True, random_state=self.seed)
