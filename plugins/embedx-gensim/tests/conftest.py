"""Shared fixtures: a registry built from the installed entry point, and a helper that runs a real extraction."""

from __future__ import annotations

import pytest

import embedx
from embedx.plugin_api.testing import LOAD_PLUGINS_ENV, Stored, build_registry


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory, monkeypatch):
    """Digests and cached vector arrays go to one folder per test session, not the user's cache folder."""
    monkeypatch.setenv("EMBEDX_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "embedx-cache"))


@pytest.fixture(scope="session")
def registry():
    """embedx's registry with installed plugins loaded, whatever EMBEDX_LOAD_PLUGINS says in this process."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(LOAD_PLUGINS_ENV, raising=False)
        reg = build_registry()
    assert {"word-vectors", "glove-6b-50d"} <= set(reg.embedders), "pip install -e plugins/embedx-gensim first"
    return reg


@pytest.fixture
def extract(registry, tmp_path):
    """Run ``embedx.extract`` into ``store`` (default ``tmp_path/features.h5``); return the report and a reader."""

    def run(texts, embedder="word-vectors", *, outputs=("doc",), store=None, **options):
        target = store or tmp_path / "features.h5"
        report = embedx.extract(texts, embedder, target, options=options, outputs=list(outputs), registry=registry)
        return report, Stored(target, report.set_name)

    return run
