"""Tests run against a registry with the built-ins, installed plugins, and the fake plugin."""

from __future__ import annotations

import pytest

import fakes
from embedx import registry as registry_module


@pytest.fixture
def registry():
    """The real registry plus the fake plugin, installed process-wide for the test's duration."""
    reg = registry_module.build_registry(extra_plugins=[("fakes", fakes)])
    registry_module.set_registry(reg)
    fakes.WordStats.calls.clear()
    try:
        yield reg
    finally:
        registry_module.set_registry(None)


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "features.h5"


@pytest.fixture(autouse=True)
def _private_cache_dir(tmp_path_factory, monkeypatch):
    """Keep the persistent digest cache of the tests out of the user's home."""
    monkeypatch.setenv("EMBEDX_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "embedx-cache"))
