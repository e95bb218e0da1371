"""The seeds' dense head: standardised vectors -> Dense(256, relu) -> softmax, early stopping on validation.

Early stopping monitors validation ``accuracy`` by default (ties go to the lower loss), the same
criterion the grid search and cross-validation rank by; ``monitor=loss`` watches the loss instead.
Given no validation rows (the refit after cross-validation), it trains exactly ``epochs`` epochs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedx.heads.base import FitReport, Head, as_matrix
from embedx.heads.data import HeadData
from embedx.heads.saved import config_int, floats, need, read_state, write_state
from embedx.heads.standardize import Standardizer
from embedx.heads.torch_loop import (
    Monitor,
    load_state_arrays,
    minibatches,
    module_specs,
    state_arrays,
    train_classifier,
)

TORCH = {"torch": "pip install torch==2.13.0"}


class DenseHead(Head):
    id = "dense"
    description = "Dense(256, relu) + softmax in PyTorch; early stopping keeps the best epoch; curves recorded"
    requires = TORCH

    def __init__(self, hidden: int = 256, dropout: float = 0.0, lr: float = 1e-3, weight_decay: float = 0.0,
                 epochs: int = 100, patience: int = 5, batch_size: int = 64, seed: int = 0, threads: int | None = None,
                 monitor: Monitor = "accuracy", class_weight: Literal["none", "balanced"] = "none"):
        """``class_weight="balanced"`` weighs each class's loss inversely to its frequency in train."""
        self.class_weight = class_weight
        self.hidden, self.dropout, self.lr, self.weight_decay = hidden, dropout, lr, weight_decay
        self.epochs, self.patience, self.batch_size, self.seed, self.threads = (
            epochs,
            patience,
            batch_size,
            seed,
            threads,
        )
        self.monitor = monitor
        self.scaler = Standardizer()
        self.model: Any = None

    def _build(self, dim: int, n_classes: int):
        import torch

        torch.manual_seed(self.seed)
        return torch.nn.Sequential(torch.nn.Linear(dim, self.hidden), torch.nn.ReLU(), torch.nn.Dropout(self.dropout),
                                   torch.nn.Linear(self.hidden, n_classes))

    def fit(self, train: HeadData, validation: HeadData | None) -> FitReport:
        import torch

        if self.threads:  # none: torch's default, which honours OMP_NUM_THREADS
            torch.set_num_threads(self.threads)
        X = as_matrix(train)
        self.scaler.fit_chunks([X])
        Xt = torch.from_numpy(self.scaler.transform(X))
        yt = torch.from_numpy(train.y.astype(np.int64))
        held_out = None
        if validation is not None and len(validation):
            held_out = ((torch.from_numpy(self.scaler.transform(as_matrix(validation))),),
                        torch.from_numpy(validation.y.astype(np.int64)))
        self.model = self._build(Xt.shape[1], len(train.classes))
        curves = train_classifier(
            self.model, lambda rng: [((Xt[b],), yt[b]) for b in minibatches(len(Xt), self.batch_size, rng)],
            held_out, epochs=self.epochs, patience=self.patience, lr=self.lr, weight_decay=self.weight_decay,
            seed=self.seed, monitor=self.monitor, class_weights=self._weights(train.y, len(train.classes)))
        return FitReport(chosen={"epochs": curves.pop("best_epoch")[0]}, curves=curves,
                         extra={"monitor": self.monitor, "max_epochs": self.epochs})

    def _weights(self, y: np.ndarray, n_classes: int) -> np.ndarray | None:
        """scikit-learn's "balanced": n / (classes present * count); a class absent from train weighs 0."""
        if self.class_weight != "balanced":
            return None
        counts = np.bincount(y, minlength=n_classes).astype(np.float64)
        return np.where(counts > 0, len(y) / (np.count_nonzero(counts) * np.maximum(counts, 1)), 0.0)

    def refit_options(self, reports: list[FitReport]) -> dict:
        """After cross-validation: train for the median of the folds' best epochs."""
        return {"epochs": max(1, int(round(float(np.median([r.chosen["epochs"] for r in reports])))))}

    def predict_proba(self, data: HeadData | np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            logits = self.model(torch.from_numpy(self.scaler.transform(as_matrix(data))))
            return torch.softmax(logits, 1).numpy()

    def save(self, directory: Path) -> None:
        first, last = self.model[0], self.model[-1]
        write_state(directory, {"mean": self.scaler.mean, "scale": self.scaler.scale} | state_arrays(self.model),
                    {"dim": first.in_features, "classes": last.out_features})

    def restore(self, directory: Path) -> None:
        def expected(config: dict) -> dict:
            dim, classes = config_int(config, "dim", directory, low=1), config_int(config, "classes", directory, low=2)
            return {"mean": floats(dim), "scale": floats(dim)} | module_specs(lambda: self._build(dim, classes))

        arrays, config = read_state(directory, expected)
        mean, scale = need(arrays, directory, "mean", "scale")
        self.scaler.load({"mean": mean, "scale": scale})
        self.model = self._build(int(config["dim"]), int(config["classes"]))
        load_state_arrays(self.model, arrays, str(directory))
