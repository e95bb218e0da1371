"""Per-feature mean and scale computed in one streaming pass, so scaling never needs all rows in memory."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


class Standardizer:
    def __init__(self) -> None:
        self.mean: Any = None
        self.scale: Any = None

    def fit_chunks(self, chunks: Iterable[np.ndarray]) -> Standardizer:
        n = 0
        total: Any = None
        squares: Any = None
        for X in chunks:
            X = X.reshape(len(X), -1).astype(np.float64)
            total = X.sum(0) if total is None else total + X.sum(0)
            squares = (X ** 2).sum(0) if squares is None else squares + (X ** 2).sum(0)
            n += len(X)
        self.mean = total / max(n, 1)
        var = np.maximum(squares / max(n, 1) - self.mean ** 2, 0.0)
        self.scale = np.where(var > 1e-12, np.sqrt(var), 1.0)
        return self

    def identity(self, row_shape: tuple[int, ...]) -> Standardizer:
        """A no-op scaler (mean 0, scale 1), saved like a fitted one."""
        size = int(np.prod(row_shape))
        self.mean, self.scale = np.zeros(size), np.ones(size)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return ((X.reshape(len(X), -1) - self.mean) / self.scale).astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean, "scale": self.scale}

    def load(self, state: dict[str, np.ndarray]) -> Standardizer:
        self.mean, self.scale = state["mean"], state["scale"]
        return self
