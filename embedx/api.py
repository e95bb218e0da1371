"""The short Python API: open a feature file, or embed texts through the cache in one call."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedx.pipeline.extraction import extract
from embedx.store.reader import FeatureStore


def open_store(path: str | Path) -> FeatureStore:
    """Open a feature file read-only (a context manager)."""
    return FeatureStore(path)


def embed(texts: Sequence[str], embedder: str, path: str | Path, *, output: str | None = None,
          **settings: Any) -> np.ndarray:
    """Document vectors for ``texts`` in their order, computing only what ``path`` lacks."""
    report = extract(texts, embedder, path, **settings)
    with open_store(path) as store:
        return store.feature_set(report.set_name).vectors(texts, output=output)
