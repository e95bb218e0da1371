"""One small PyTorch training loop for the neural heads: mini-batches, early stopping, best weights kept.

Early stopping watches validation loss; the weights of the best epoch are restored at the end,
and every epoch's training and validation loss and accuracy are recorded as curves.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np


def train_classifier(model, batches: Callable[[np.random.Generator], list], validation: tuple, *, epochs: int,
                     patience: int, lr: float, weight_decay: float, seed: int) -> dict[str, list[float]]:
    """Train ``model`` on ``batches(rng)`` (a list of ``(inputs, y)`` per epoch); return the curves.

    ``inputs`` is a tuple of tensors passed to ``model(*inputs)``; ``validation`` is ``(inputs, y)``.
    """
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss()
    curves: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "train_accuracy": [], "val_accuracy": []}
    best_loss, best_state, stale = float("inf"), copy.deepcopy(model.state_dict()), 0
    val_inputs, val_y = validation
    for _ in range(epochs):
        model.train()
        total, correct, count = 0.0, 0, 0
        for inputs, y in batches(rng):
            optimizer.zero_grad()
            logits = model(*inputs)
            loss = loss_fn(logits, y)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            count += len(y)
        model.eval()
        with torch.no_grad():
            logits = model(*val_inputs)
            val_loss = float(loss_fn(logits, val_y))
            val_acc = float((logits.argmax(1) == val_y).float().mean())
        curves["train_loss"].append(total / max(count, 1))
        curves["train_accuracy"].append(correct / max(count, 1))
        curves["val_loss"].append(val_loss)
        curves["val_accuracy"].append(val_acc)
        if val_loss < best_loss - 1e-4:
            best_loss, best_state, stale = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    curves["best_epoch"] = [int(np.argmin(curves["val_loss"])) + 1]
    return curves


def minibatches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]
