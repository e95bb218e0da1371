"""A learned layer mix over cached per-layer features (ELMo's ScalarMix), then pooling and a classifier.

``gamma * sum_k softmax(w)_k * layer_k`` is trained with the classifier on features cached per
layer (BERT ``layers=all``, ELMo's layers), without re-running the model. Each layer is first
standardised per feature on the training rows, so layers of different scale mix fairly. With a
token-level per-layer output, tokens are mixed, then mean- or max-pooled under a mask.

Early stopping monitors validation loss by default (unlike the dense head's accuracy): the layer
weights keep moving long after accuracy stops changing, and stopping on accuracy freezes them near
uniform. ``monitor=accuracy`` is available.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from embedx.heads.base import FitReport, Head
from embedx.heads.data import HeadData
from embedx.heads.dense import TORCH
from embedx.heads.saved import STATE_CONFIG, HeadStateError, config_int, floats, need, read_state, write_state
from embedx.heads.torch_loop import (
    Monitor,
    load_state_arrays,
    minibatches,
    module_specs,
    state_arrays,
    train_classifier,
)


def _module(layers: int, dim: int, n_classes: int, hidden: int, pooling: str):
    import torch

    class ScalarMixClassifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weights = torch.nn.Parameter(torch.zeros(layers))
            self.gamma = torch.nn.Parameter(torch.ones(()))
            self.classifier = (torch.nn.Linear(dim, n_classes) if hidden == 0 else torch.nn.Sequential(
                torch.nn.Linear(dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_classes)))

        def forward(self, x, mask=None):
            mixed = self.gamma * torch.einsum("...ld,l->...d", x, torch.softmax(self.weights, 0))
            if mask is not None:  # tokens: [B, T, D] pooled over real tokens only
                m = mask.unsqueeze(-1)
                if pooling == "max":
                    mixed = mixed.masked_fill(~m, float("-inf")).amax(1)
                    mixed = torch.where(torch.isfinite(mixed), mixed, torch.zeros_like(mixed))
                else:
                    mixed = (mixed * m).sum(1) / m.sum(1).clamp(min=1)
            return self.classifier(mixed)

    return ScalarMixClassifier()


class LayerMixHead(Head):
    id = "layer-mix"
    description = "ScalarMix (softmax layer weights + scale) over cached per-layer features, pooling, classifier"
    requires = TORCH
    input = "layers"

    def __init__(self, classifier: Literal["linear", "dense"] = "linear", hidden: int = 256,
                 pooling: Literal["mean", "max"] = "mean", lr: float = 1e-3, weight_decay: float = 0.0,
                 epochs: int = 100, patience: int = 5, batch_size: int = 64, seed: int = 0, threads: int | None = None,
                 monitor: Monitor = "loss"):
        self.monitor = monitor
        self.classifier, self.hidden, self.pooling = classifier, hidden, pooling
        self.lr, self.weight_decay, self.epochs, self.patience = lr, weight_decay, epochs, patience
        self.batch_size, self.seed, self.threads = batch_size, seed, threads
        self.model: Any = None
        self.mean: Any = None
        self.scale: Any = None
        self.tokens = False

    def _inputs(self, data: HeadData):
        """``(x,)`` or ``(x, mask)`` tensors for all rows, standardised per layer and feature."""
        import torch

        if data.level == "document":
            return (torch.from_numpy(((data.array() - self.mean) / self.scale).astype(np.float32)),)
        arrays = data.token_arrays()
        longest = max((len(a) for a in arrays), default=1) or 1
        x = np.zeros((len(arrays), longest, *self.mean.shape), dtype=np.float32)
        mask = np.zeros((len(arrays), longest), dtype=bool)
        for i, a in enumerate(arrays):
            x[i, :len(a)] = (a - self.mean) / self.scale
            mask[i, :len(a)] = True
        return torch.from_numpy(x), torch.from_numpy(mask)

    def fit(self, train: HeadData, validation: HeadData | None) -> FitReport:
        import torch

        if not train.per_layer:
            raise ValueError(f"layer-mix needs a per-layer output; {train.output!r} has no layer axis "
                             "(extract with layers=all, or ELMo's per-layer token output)")
        if self.threads:  # none: torch's default, which honours OMP_NUM_THREADS
            torch.set_num_threads(self.threads)
        self.tokens = train.level == "token"
        sample = np.concatenate(train.token_arrays()) if self.tokens else train.array()
        self.mean, self.scale = sample.mean(0), sample.std(0) + 1e-6  # [layers, dim]
        layers, dim = self.mean.shape
        self.model = _module(layers, dim, len(train.classes), 0 if self.classifier == "linear" else self.hidden,
                             self.pooling)
        yt = torch.from_numpy(train.y.astype(np.int64))
        whole = self._inputs(train)  # the training rows are held in memory (padded, for token inputs)

        def batches(rng):
            return [(tuple(t[b] for t in whole), yt[b]) for b in minibatches(len(train), self.batch_size, rng)]

        held_out = None
        if validation is not None and len(validation):
            held_out = (self._inputs(validation), torch.from_numpy(validation.y.astype(np.int64)))
        curves = train_classifier(self.model, batches, held_out, epochs=self.epochs, patience=self.patience,
                                  lr=self.lr, weight_decay=self.weight_decay, seed=self.seed, monitor=self.monitor)
        weights = torch.softmax(self.model.weights.detach(), 0).numpy()
        return FitReport(chosen={"epochs": curves.pop("best_epoch")[0]}, curves=curves,
                         extra={"layer_weights": [round(float(w), 4) for w in weights],
                                "gamma": round(float(self.model.gamma.detach()), 4)})

    def predict_proba(self, data: HeadData | np.ndarray) -> np.ndarray:
        import torch

        if not hasattr(data, "array"):
            inputs = (torch.from_numpy(((data - self.mean) / self.scale).astype(np.float32)),)
        else:
            inputs = self._inputs(data)  # type: ignore[arg-type]  # has .array: a HeadData
        with torch.no_grad():
            return torch.softmax(self.model(*inputs), 1).numpy()

    def refit_options(self, reports: list[FitReport]) -> dict:
        """After cross-validation: train for the median of the folds' best epochs."""
        return {"epochs": max(1, int(round(float(np.median([r.chosen["epochs"] for r in reports])))))}

    def save(self, directory: Path) -> None:
        layers, dim = self.mean.shape
        n_classes = (self.model.classifier if hasattr(self.model.classifier, "out_features")
                     else self.model.classifier[-1]).out_features
        write_state(directory, {"mean": self.mean, "scale": self.scale} | state_arrays(self.model),
                    {"tokens": self.tokens, "shape": [layers, dim, n_classes]})

    def restore(self, directory: Path) -> None:
        hidden = 0 if self.classifier == "linear" else self.hidden

        def expected(config: dict) -> dict:
            shape = config.get("shape")
            if not isinstance(shape, list) or len(shape) != 3 or not isinstance(config.get("tokens"), bool):
                raise HeadStateError(f"{directory / STATE_CONFIG}: expected 'shape' [layers, dim, classes] and "
                                     "'tokens' true/false; save the head again")
            sizes = dict(zip(("layers", "dim", "classes"), shape, strict=True))
            layers, dim = config_int(sizes, "layers", directory, low=1), config_int(sizes, "dim", directory, low=1)
            n_classes = config_int(sizes, "classes", directory, low=2)
            return {"mean": floats(layers, dim), "scale": floats(layers, dim)} | module_specs(
                lambda: _module(layers, dim, n_classes, hidden, self.pooling))

        arrays, config = read_state(directory, expected)
        self.mean, self.scale = need(arrays, directory, "mean", "scale")
        layers, dim, n_classes = (int(v) for v in config["shape"])
        self.tokens = bool(config["tokens"])
        self.model = _module(layers, dim, n_classes, 0 if self.classifier == "linear" else self.hidden, self.pooling)
        load_state_arrays(self.model, arrays, str(directory))
