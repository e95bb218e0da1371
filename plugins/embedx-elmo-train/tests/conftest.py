"""The TF Hub runtime's shared fixtures (:mod:`embedx_tfhub.testing.fixtures`): registry, tf, hub; and ``extract``."""

from __future__ import annotations

import pytest

import embedx
from embedx_tfhub.testing.fixtures import hub, registry, tf  # noqa: F401


@pytest.fixture
def extract(registry, tmp_path):  # noqa: F811
    """Run ``embedx.extract`` into ``tmp_path/features.h5``; return the report and a reader."""

    def run(texts, embedder, *, outputs=None, **options):
        target = tmp_path / "features.h5"
        report = embedx.extract(texts, embedder, target, options=options, registry=registry,
                                outputs=list(outputs) if outputs else None)
        return report, Stored(target, report.set_name)

    return run


class Stored:
    """Read back one feature set, by text and output."""

    def __init__(self, path, set_name: str):
        self.path, self.set_name = path, set_name

    def doc(self, texts, output):
        with embedx.open_store(self.path) as store:
            return store.feature_set(self.set_name).vectors(texts, output=output)

    def tokens(self, texts, output):
        with embedx.open_store(self.path) as store:
            return store.feature_set(self.set_name).tokens(texts, output=output)
