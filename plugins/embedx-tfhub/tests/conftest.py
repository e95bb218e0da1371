"""Shared fixtures: the test modules, registry, tf and hub from :mod:`embedx_tfhub.testing.fixtures` (also used by
embedx-swivel and embedx-elmo-train), and a helper that runs a real extraction and reads it back."""

from __future__ import annotations

import os

import numpy as np
import pytest

import embedx
from embedx_tfhub.testing.fixtures import hub, modules, registry, tf  # noqa: F401


@pytest.fixture
def extract(registry, tmp_path):  # noqa: F811
    """Run ``embedx.extract`` into ``tmp_path/features.h5``; return the report and a reader."""

    def run(texts, embedder, *, outputs=None, store=None, **options):
        target = store or tmp_path / "features.h5"
        report = embedx.extract(texts, embedder, target, options=options, registry=registry,
                                outputs=list(outputs) if outputs else None)
        return report, Stored(target, report.set_name)

    return run


class Stored:
    """Read back one feature set of a feature file."""

    def __init__(self, path: os.PathLike, set_name: str):
        self.path, self.set_name = path, set_name

    def doc(self, texts, output) -> np.ndarray:
        with embedx.open_store(self.path) as store:
            return store.feature_set(self.set_name).vectors(texts, output=output)

    def tokens(self, texts, output) -> list[tuple[list[str], np.ndarray]]:
        with embedx.open_store(self.path) as store:
            return store.feature_set(self.set_name).tokens(texts, output=output)

    def truncated(self, texts) -> np.ndarray:
        with embedx.open_store(self.path) as store:
            return store.feature_set(self.set_name).truncated(texts)
