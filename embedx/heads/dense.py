"""The seeds' dense head: standardised vectors -> Dense(256, relu) -> softmax, early stopping on validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedx.heads.base import FitReport, Head, as_matrix
from embedx.heads.data import HeadData
from embedx.heads.standardize import Standardizer
from embedx.heads.torch_loop import minibatches, train_classifier

TORCH = {"torch": "pip install torch==2.13.0"}


class DenseHead(Head):
    id = "dense"
    description = "Dense(256, relu) + softmax in PyTorch; early stopping keeps the best epoch; curves recorded"
    requires = TORCH

    def __init__(self, hidden: int = 256, dropout: float = 0.0, lr: float = 1e-3, weight_decay: float = 0.0,
                 epochs: int = 100, patience: int = 5, batch_size: int = 64, seed: int = 0, threads: int = 2):
        self.hidden, self.dropout, self.lr, self.weight_decay = hidden, dropout, lr, weight_decay
        self.epochs, self.patience, self.batch_size, self.seed, self.threads = epochs, patience, batch_size, seed, threads
        self.scaler = Standardizer()
        self.model = None

    def _build(self, dim: int, n_classes: int):
        import torch

        torch.manual_seed(self.seed)
        return torch.nn.Sequential(torch.nn.Linear(dim, self.hidden), torch.nn.ReLU(), torch.nn.Dropout(self.dropout),
                                   torch.nn.Linear(self.hidden, n_classes))

    def fit(self, train: HeadData, validation: HeadData) -> FitReport:
        import torch

        torch.set_num_threads(self.threads)
        X = as_matrix(train)
        self.scaler.fit_chunks([X])
        Xt = torch.from_numpy(self.scaler.transform(X))
        yt = torch.from_numpy(train.y.astype(np.int64))
        Xv = torch.from_numpy(self.scaler.transform(as_matrix(validation)))
        yv = torch.from_numpy(validation.y.astype(np.int64))
        self.model = self._build(Xt.shape[1], len(train.classes))
        curves = train_classifier(
            self.model, lambda rng: [((Xt[b],), yt[b]) for b in minibatches(len(Xt), self.batch_size, rng)],
            ((Xv,), yv), epochs=self.epochs, patience=self.patience, lr=self.lr, weight_decay=self.weight_decay,
            seed=self.seed)
        return FitReport(chosen={"epochs": curves.pop("best_epoch")[0]}, curves=curves)

    def predict_proba(self, data: HeadData | np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            logits = self.model(torch.from_numpy(self.scaler.transform(as_matrix(data))))
            return torch.softmax(logits, 1).numpy()

    def save(self, directory: Path) -> None:
        import torch

        np.savez(directory / "scaler.npz", **self.scaler.state())
        first, last = self.model[0], self.model[-1]
        torch.save({"state": self.model.state_dict(), "dim": first.in_features, "classes": last.out_features},
                   directory / "model.pt")

    def restore(self, directory: Path) -> None:
        import torch

        with np.load(directory / "scaler.npz") as state:
            self.scaler.load({k: state[k] for k in state.files})
        saved = torch.load(directory / "model.pt", weights_only=True)
        self.model = self._build(saved["dim"], saved["classes"])
        self.model.load_state_dict(saved["state"])
        self.model.eval()
