"""The TF Hub runtime's shared fixtures (:mod:`embedx_tfhub.testing.fixtures`): registry, tf, hub; and ``extract``."""

from __future__ import annotations

import pytest

from embedx.plugin_api.testing import extractor
from embedx_tfhub.testing.fixtures import hub, registry, tf  # noqa: F401


@pytest.fixture
def extract(registry, tmp_path):  # noqa: F811
    """Run ``embedx.extract`` into ``tmp_path/features.h5``; return the report and a reader."""
    return extractor(registry, tmp_path)
