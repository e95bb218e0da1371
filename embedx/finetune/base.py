"""The fine-tuner contract: texts and labels in, test predictions, curves, wall time and memory out.

A fine-tuner is registered through ``register_finetuners`` by the plugin that owns the model
family (BERT on PyTorch in embedx-transformers, Keras hub layers in embedx-tfhub), so the
core never imports a framework.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


@dataclass
class FineTuneResult:
    """Predictions for the validation and test texts, per-epoch curves, and what it cost."""

    validation_pred: np.ndarray
    test_pred: np.ndarray
    curves: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class FineTuner(abc.ABC):
    id: ClassVar[str] = ""
    description: ClassVar[str] = ""
    requires: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def model_paths(cls, options: Mapping[str, str]) -> dict[str, str]:
        """The option values a run with ``options`` reads, defaults included, by option name.

        ``embedx bench compare`` keys its journal by the content of those that name a file or folder, so a
        model retrained in place is fine-tuned again. The options as given are enough unless the
        fine-tuner finds a model without one (a default path, an environment variable): then say where.
        """
        return dict(options)

    @abc.abstractmethod
    def run(self, train: tuple[list[str], np.ndarray], validation: tuple[list[str], np.ndarray],
            test: list[str], n_classes: int, seed: int) -> FineTuneResult:
        """Train on ``train`` (texts, int labels) with early stopping on ``validation``; predict ``test``."""
