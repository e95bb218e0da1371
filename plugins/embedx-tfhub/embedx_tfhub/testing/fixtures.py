"""Shared pytest fixtures: the test modules (built once per session), a registry from the installed entry
points, and a helper that runs a real extraction and reads it back.

Used by the tests of embedx-tfhub, embedx-swivel and embedx-elmo-train; each ``tests/conftest.py`` imports
the fixtures it needs from here. Importing this module imports pytest (tests only), not TensorFlow.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import embedx
from embedx.plugin_api.testing import LOAD_PLUGINS_ENV, build_registry


@pytest.fixture(scope="session")
def registry():
    """embedx's registry with installed plugins loaded, whatever EMBEDX_LOAD_PLUGINS says in this process."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(LOAD_PLUGINS_ENV, raising=False)
        reg = build_registry()
    assert {"elmo", "tfhub-bert", "tfhub-text"} <= set(reg.embedders), "pip install -e plugins/embedx-tfhub first"
    return reg


@pytest.fixture(scope="session")
def modules(tmp_path_factory):
    """The three small modules with published interfaces: {"elmo": folder, "text": folder, "bert": folder}."""
    from embedx_tfhub.testing import build_test_modules

    return build_test_modules(tmp_path_factory.mktemp("tfhub-modules"))


@pytest.fixture(scope="session")
def tf():
    from embedx_tfhub import _tf

    return _tf.tensorflow()


@pytest.fixture(scope="session")
def hub():
    from embedx_tfhub import _tf

    return _tf.hub()


@pytest.fixture
def extract(registry, tmp_path):
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
