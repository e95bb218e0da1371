"""One small PyTorch training loop for the neural heads: mini-batches, early stopping, best weights kept.

Early stopping watches one validation metric (``monitor``): ``accuracy`` (ties broken by the lower
loss) or ``loss``. The weights of the best epoch by that metric are restored at the end, and that
epoch is the one reported. Without validation data the loop trains exactly ``epochs`` epochs and
keeps the last weights (the refit after cross-validation). Every epoch's losses and accuracies are
recorded as curves.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Literal

import numpy as np

Monitor = Literal["accuracy", "loss"]
MONITORS = ("accuracy", "loss")
LOSS_DELTA = 1e-4  # a validation loss must fall by this much to count as better


def train_classifier(model, batches: Callable[[np.random.Generator], list], validation: tuple | None, *,
                     epochs: int, patience: int, lr: float, weight_decay: float, seed: int,
                     monitor: Monitor = "accuracy", class_weights: np.ndarray | None = None) -> dict[str, list[float]]:
    """Train ``model`` on ``batches(rng)`` (a list of ``(inputs, y)`` per epoch); return the curves.

    ``class_weights`` (one per class) weigh the training loss; validation losses stay unweighted.

    ``inputs`` is a tuple of tensors passed to ``model(*inputs)``; ``validation`` is ``(inputs, y)`` or None.
    ``curves["best_epoch"]`` is ``[n]``: the 1-based epoch whose weights the model holds on return.
    """
    import torch

    if monitor not in MONITORS:
        raise ValueError(f"monitor={monitor!r}: choose {' or '.join(MONITORS)}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(
        weight=None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32))
    curves: dict[str, list[float]] = {"train_loss": [], "train_accuracy": []}
    if validation is not None:
        curves |= {"val_loss": [], "val_accuracy": []}
    best_key, best_state, best_epoch, stale = None, None, 0, 0
    for epoch in range(1, epochs + 1):
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
        curves["train_loss"].append(total / max(count, 1))
        curves["train_accuracy"].append(correct / max(count, 1))
        if validation is None:
            best_epoch = epoch
            continue
        val_inputs, val_y = validation
        with torch.no_grad():
            logits = model(*val_inputs)
            val_loss = float(loss_fn(logits, val_y))
            val_acc = float((logits.argmax(1) == val_y).float().mean())
        curves["val_loss"].append(val_loss)
        curves["val_accuracy"].append(val_acc)
        if _better(monitor, val_acc, val_loss, best_key):
            best_key, best_state, best_epoch, stale = (val_acc, val_loss), copy.deepcopy(model.state_dict()), epoch, 0
        else:
            stale += 1
            if stale >= patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    curves["best_epoch"] = [best_epoch]
    return curves


def _better(monitor: str, accuracy: float, loss: float, best: tuple[float, float] | None) -> bool:
    if best is None:
        return True
    best_accuracy, best_loss = best
    if monitor == "loss":
        return loss < best_loss - LOSS_DELTA
    return accuracy > best_accuracy or (accuracy == best_accuracy and loss < best_loss - LOSS_DELTA)


def minibatches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def state_arrays(model) -> dict[str, np.ndarray]:
    """A module's parameters and buffers as numpy arrays, keyed ``param.<name>`` (for ``saved.write_state``)."""
    return {f"param.{name}": tensor.detach().cpu().numpy() for name, tensor in model.state_dict().items()}


def module_specs(build) -> dict:
    """The ``param.<name>`` arrays a module holds (for ``saved.read_state``), built on torch's meta device:
    shapes only, nothing allocated, whatever sizes a saved head's settings claim."""
    import torch

    from embedx.heads.saved import floats

    with torch.device("meta"):
        model = build()
    return {f"param.{name}": floats(*tensor.shape) for name, tensor in model.state_dict().items()}


def load_state_arrays(model, arrays: dict[str, np.ndarray], where: str) -> None:
    """Load what :func:`state_arrays` wrote; names and shapes must match the module exactly."""
    import torch

    from embedx.heads.saved import HeadStateError

    try:
        state = {name[len("param."):]: torch.from_numpy(np.array(value)) for name, value in arrays.items()
                 if name.startswith("param.")}
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise HeadStateError(f"{where}: weights do not fit the head ({first}); save the head again") from None
    model.eval()
