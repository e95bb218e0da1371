"""Shared fixtures: a registry built from the installed entry point, and a helper that runs a real extraction."""

from __future__ import annotations

import pytest

from embedx.plugin_api.testing import extractor, installed_registry


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory, monkeypatch):
    """Digests and cached vector arrays go to one folder per test session, not the user's cache folder."""
    monkeypatch.setenv("EMBEDX_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "embedx-cache"))


@pytest.fixture(scope="session")
def registry():
    """embedx's registry with installed plugins loaded, whatever EMBEDX_LOAD_PLUGINS says in this process."""
    return installed_registry({"word-vectors", "glove-6b-50d"}, "pip install -e plugins/embedx-gensim first")


@pytest.fixture
def extract(registry, tmp_path):
    """Run ``embedx.extract`` into ``store`` (default ``tmp_path/features.h5``); return the report and a reader."""
    return extractor(registry, tmp_path, embedder="word-vectors", outputs=("doc",))
