"""Shared fixtures: the test modules, registry, tf and hub from :mod:`embedx_tfhub.testing.fixtures` (also used by
embedx-swivel and embedx-elmo-train), and a helper that runs a real extraction and reads it back."""

from __future__ import annotations

import pytest

from embedx.plugin_api.testing import extractor
from embedx_tfhub.testing.fixtures import hub, modules, registry, tf  # noqa: F401


@pytest.fixture
def extract(registry, tmp_path):  # noqa: F811
    """Run ``embedx.extract`` into ``store`` (default ``tmp_path/features.h5``), the embedder's default outputs
    unless told; return the report and a reader (:class:`embedx.plugin_api.testing.Stored`)."""
    return extractor(registry, tmp_path)
