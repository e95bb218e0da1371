"""The head contract: options from ``__init__``, ``fit`` on train + validation, ``predict_proba``, save/load.

Heads are plugins like embedders: a class registered through ``register_heads``. Importing
this module is light; heads import scikit-learn or torch inside their methods.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from embedx.heads.data import HeadData


@dataclass
class FitReport:
    """What training found: the hyperparameters picked on validation, per-epoch curves, extra facts."""

    chosen: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, list[float]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class Head(abc.ABC):
    """Base class of every head. Subclasses take typed keyword options in ``__init__``."""

    id: ClassVar[str] = ""
    description: ClassVar[str] = ""
    requires: ClassVar[Mapping[str, str]] = {}
    #: "document": one vector (or one per layer) per text; "layers": needs a per-layer output.
    input: ClassVar[str] = "document"
    #: Trains from chunks, so the training set never has to fit in memory.
    streaming: ClassVar[bool] = False

    @abc.abstractmethod
    def fit(self, train: HeadData, validation: HeadData | None) -> FitReport:
        """Train; ``validation`` is for model selection and early stopping, never for fitting weights.

        ``validation`` is None for the final refit after cross-validation: then the head trains with
        its settings as given (heads with early stopping run the epochs :meth:`refit_options` chose).
        """

    def search_space(self) -> dict[str, list[Any]]:
        """Settings the selection protocol chooses among, as option name -> candidate values.

        Empty when the head has nothing to choose. Each value is a complete option value.
        """
        return {}

    def refit_options(self, reports: list[FitReport]) -> dict[str, Any]:
        """Options for the refit on train+validation, from the cross-validation folds' reports."""
        return {}

    def warm_from(self, other: Head) -> None:
        """Start the next fit from ``other``'s fitted solution, where that only saves time.

        Cross-validation calls it with the same fold's previous candidate (the next C of a grid).
        Only heads whose fit reaches the same optimum from any start (convex problems) may use it.
        """

    @abc.abstractmethod
    def predict_proba(self, data: HeadData | np.ndarray) -> np.ndarray:
        """Class probabilities ``[n, n_classes]`` (columns in ``data.classes`` order)."""

    def predict(self, data: HeadData | np.ndarray) -> np.ndarray:
        return np.argmax(self.predict_proba(data), axis=1)

    @abc.abstractmethod
    def save(self, directory: Path) -> None:
        """Write the trained state into ``directory`` (created by the caller)."""

    @abc.abstractmethod
    def restore(self, directory: Path) -> None:
        """Read back what :meth:`save` wrote, into a head built with the same options."""


def as_matrix(data: HeadData | np.ndarray) -> np.ndarray:
    """A 2-D float32 matrix from a HeadData or an array (per-layer rows are flattened)."""
    X = data.array() if hasattr(data, "array") else np.asarray(data, dtype=np.float32)
    return X.reshape(len(X), -1)
